import { readFile, writeFile } from 'node:fs/promises';
import { isMap, isScalar, parseDocument, YAMLMap } from 'yaml';
import { parseInventory } from '../../config/load.js';
import type { Path } from '../../config/source.js';
import { ConfigError } from '../../errors.js';
import { TIMING_MESSAGE, timingChoices, VECTOR_CHOICES } from './choices.js';
import type { Prompts } from './prompts.js';
import { fieldProblem } from './validate.js';

/**
 * The questions a sprint needs that the inventory leaves to a default. Asked
 * on a terminal only, before the sprint's plan; each answer is written back
 * into the inventory (comments kept), so the next run asks nothing. Without
 * a terminal the defaults apply, as they always did.
 */
interface SprintQuestion {
  sprint: number;
  /** The key that answers it; asked only when the file does not set it (or its section). */
  path: Path;
  comment: string;
  ask(p: Prompts, inv: { hosts: readonly { roles: readonly string[] }[] }): Promise<string | number>;
}

const whole = (path: Path) => (v: string) => (/^\d+$/.test(v.trim()) ? (fieldProblem(path, Number(v)) ?? true) : `expected a whole number, got ${JSON.stringify(v)}`);

export const SPRINT_QUESTIONS: SprintQuestion[] = [
  {
    sprint: 0,
    path: ['postgres', 'vector'],
    comment: ' Chosen at `dpgc sprint 0`.',
    ask: (p) => p.select({ message: 'Vector engine (postgres.vector is not set)', choices: VECTOR_CHOICES, default: 'pgvector' }),
  },
  {
    sprint: 2,
    path: ['timings', 'profile'],
    comment: ' Chosen at `dpgc sprint 2` from the worst-case failover each profile buys.',
    ask: (p, inv) => p.select({ message: `${TIMING_MESSAGE} (timings is not set)`, choices: timingChoices(inv.hosts.some((h) => h.roles.includes('postgres') && h.roles.includes('etcd'))), default: 'balanced' }),
  },
  {
    sprint: 4,
    path: ['backup', 'retention_full'],
    comment: ' Chosen at `dpgc sprint 4`: full backups kept.',
    ask: async (p) => Number(await p.input({ message: 'Full backups to keep (backup.retention_full is not set)', default: '2', validate: whole(['backup', 'retention_full']) })),
  },
  {
    sprint: 4,
    path: ['backup', 'schedule'],
    comment: ' Chosen at `dpgc sprint 4`.',
    ask: (p) => p.input({ message: 'Backup schedule: an interval (1d, 6h) or systemd OnCalendar (daily) (backup.schedule is not set)', default: '1d', validate: (v) => fieldProblem(['backup', 'schedule'], v) ?? true }),
  },
];

/**
 * Asks sprint `n`'s open questions and writes the answers into `file`.
 * Returns how many were asked. The file is parsed again before it is
 * written: an answer never leaves an inventory the loader refuses.
 */
export async function askSprintQuestions(p: Prompts, file: string, n: number): Promise<number> {
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const parsed = parseInventory(text, file);
  if (!parsed.inventory) return 0; // the command reports the file's problems itself
  const open = SPRINT_QUESTIONS.filter((q) => q.sprint === n && !doc.hasIn(q.path) && !(q.path[0] === 'timings' && doc.has('timings')));
  if (!open.length) return 0;
  p.say(`Sprint ${n} needs ${open.length === 1 ? 'an answer' : `${open.length} answers`} the inventory does not give; ${open.length === 1 ? 'it is' : 'they are'} written into ${file}.`);
  for (const q of open) {
    const v = await q.ask(p, parsed.inventory);
    // createPair makes the key a node, so the comment has somewhere to live.
    const pair = doc.createPair(q.path[q.path.length - 1], v);
    if (isScalar(pair.key)) pair.key.commentBefore = q.comment;
    const parent = doc.getIn(q.path.slice(0, -1), true);
    if (isMap(parent)) parent.items.push(pair);
    else {
      const m = new YAMLMap();
      m.items.push(pair);
      doc.setIn(q.path.slice(0, -1), m);
    }
  }
  const out = doc.toString();
  const check = parseInventory(out, file);
  if (!check.inventory) throw new ConfigError(`the answers would make ${file} invalid; nothing was written`, { issues: check.issues });
  await writeFile(file, out);
  return open.length;
}
