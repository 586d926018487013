import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import type { CheckOutcome } from './checks/types.js';
import { fmtPath } from './config/source.js';
import { createLogger } from './output/log.js';

/**
 * What dpgc last did, beside the inventory (`<inventory>.state.json`). A
 * record, never a source of truth: status and verify measure the live cluster.
 * It is read like any other input: a file that does not match the schema
 * below is reported and ignored (as if there were no record), never trusted
 * and never a crash.
 */
export interface SprintRecord {
  at: string;
  inventoryHash: string;
  passed: boolean;
  /** Set when the previous sprint's gate was overridden with --force. */
  forced?: { failing: string[] };
  results: Pick<CheckOutcome, 'id' | 'verdict' | 'value' | 'threshold' | 'detail'>[];
}

export interface State {
  sprints: Record<string, SprintRecord>;
}

const sprintRecordSchema = z.object({
  at: z.string(),
  inventoryHash: z.string(),
  passed: z.boolean(),
  forced: z.object({ failing: z.array(z.string()) }).optional(),
  results: z.array(
    z.object({
      id: z.string(),
      verdict: z.enum(['pass', 'warn', 'fail']),
      value: z.union([z.string(), z.number()]).optional(),
      threshold: z.string().optional(),
      detail: z.string().optional(),
    }),
  ),
});

const stateSchema = z.object({
  // Keys are sprint numbers: anything else ("abc") once made `verify` measure nothing and pass.
  sprints: z.record(z.string().regex(/^[0-5]$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a sprint number (0 to 5)` }), sprintRecordSchema),
});

export function statePathFor(inventoryFile: string): string {
  return inventoryFile.replace(/\.ya?ml$/, '') + '.state.json';
}

const EMPTY = (): State => ({ sprints: {} });

/** The state, or why the file cannot be used (undefined `problem` when it is fine or absent). */
export async function loadState(file: string): Promise<{ state: State; problem?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: EMPTY() };
    return { state: EMPTY(), problem: `cannot be read (${code ?? (e as Error).message})` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { state: EMPTY(), problem: `is not JSON (${(e as Error).message})` };
  }
  const r = stateSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const path = fmtPath(i.path.filter((p): p is string | number => typeof p !== 'symbol'));
    const message = i.code === 'invalid_key' ? (i.issues[0]?.message ?? i.message) : i.message;
    return { state: EMPTY(), problem: `is not a dpgc state file (${path ? `${path}: ` : ''}${message})` };
  }
  return { state: r.data };
}

// Several modules read the state in one run (verify, PgBouncer routing, scrape targets): say it once.
const warned = new Set<string>();
const stderrWarn = (m: string) => createLogger().warn(m);

/**
 * The state for deciding what to do; a corrupt or foreign file is reported
 * (file and what is wrong) and treated as no record, in favour of what the
 * live cluster says.
 */
export async function readState(file: string, warn: (message: string) => void = stderrWarn): Promise<State> {
  const { state, problem } = await loadState(file);
  if (problem) {
    const message = `state file ${file} ${problem}; ignoring it (dpgc measures the live cluster instead, and the next sprint run writes a new one)`;
    if (!warned.has(message)) {
      warned.add(message);
      warn(message);
    }
  }
  return state;
}

/** Adds one sprint's record; written to a temporary file and renamed, so a reader never sees half a file. */
export async function recordSprint(file: string, id: number, rec: SprintRecord, warn?: (message: string) => void): Promise<void> {
  const s = await readState(file, warn);
  s.sprints[String(id)] = rec;
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export async function inventoryHash(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex').slice(0, 16);
}
