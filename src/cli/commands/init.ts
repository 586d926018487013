import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { caPathsFor } from '../../components/ca.js';
import { parseInventory } from '../../config/load.js';
import { UsageError } from '../../errors.js';
import { expandHome } from '../../hosts/known-hosts.js';
import { createLogger } from '../../output/log.js';
import { globals } from '../globals.js';
import { withHostsLock } from '../setup.js';
import { askInit, type InitAnswers, type InitFlags } from '../wizard/init-wizard.js';
import { inventoryDocument, summaryLines } from '../wizard/inventory-doc.js';
import { terminalPrompts } from '../wizard/prompts.js';
import { sshProber } from '../wizard/ssh-prober.js';

/**
 * `dpgc init`: the questions first, each host proven over SSH as it is
 * entered, then one validated write of an inventory that explains itself.
 * Without a TTY (or with --yes, CI) nothing is asked: answers come from
 * flags or defaults, and a missing one is a usage error naming its flag.
 */
export async function initCommand(cmd: Command): Promise<void> {
  const g = globals(cmd);
  const o = cmd.opts<InitFlags & { force?: boolean }>();
  const file = resolve(g.config);
  const exists = () => {
    if (existsSync(file) && !o.force) throw new UsageError(`${file} already exists`, { hint: 'Pass --force to overwrite it, or -c <file> to write another.' });
  };
  exists();
  const logger = createLogger({ verbose: g.verbose });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const prompts = g.nonInteractive ? undefined : await terminalPrompts();
  const prober = sshProber(logger);
  const answers = await askInit({ prompts, prober, flags: o, acceptNewHostKeys: g.acceptNewHostKeys, log });

  const text = inventoryDocument(answers, g.config).toString();
  const r = parseInventory(text, file);
  if (!r.inventory) throw new UsageError(`the answers do not make a valid inventory:\n${r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
  for (const l of summaryLines(answers, g.config)) log(l);
  if (prompts && !(await prompts.confirm({ message: `Write ${g.config}?`, default: true }))) {
    log('Nothing written.');
    return;
  }
  await withHostsLock(cmd, async () => {
    // Checked again under the lock: another run may have written it while the questions were asked.
    exists();
    if (answers.ca.kind === 'own') await installOwnCa(answers.ca, file);
    for (const h of answers.hosts) if (h.recordKey) await prober.trust(h.recordKey);
    await writeFile(file, text);
  }, { createsInventory: true });
  log(`Wrote ${file}.`);
  if (!prompts) {
    log(`Next: \`dpgc -c ${g.config} plan 0\` shows what sprint 0 would change; \`dpgc -c ${g.config} sprint 0\` runs it.`);
    return;
  }
  const next = await prompts.select({
    message: 'Next',
    choices: [
      { value: 'plan', name: 'Show what sprint 0 would change (dpgc plan 0)' },
      { value: 'sprint', name: 'Run sprint 0 now (dpgc sprint 0)' },
      { value: 'exit', name: 'Nothing now' },
    ],
  });
  if (next === 'plan') await (await import('./plan.js')).planCommand(cmd, 0);
  else if (next === 'sprint') await (await import('./sprint.js')).runSprintCommand(cmd, 0, { force: false });
  else log(`When ready: \`dpgc -c ${g.config} plan 0\`, then \`dpgc -c ${g.config} sprint 0\`.`);
}

/** The operator's CA where src/components/ca.ts finds the cluster's: `<inventory>.ca/`, key 0600 in a 0700 directory. */
async function installOwnCa(ca: Extract<InitAnswers['ca'], { kind: 'own' }>, file: string): Promise<void> {
  const paths = caPathsFor(file);
  if (existsSync(paths.key)) throw new UsageError(`${paths.key} already exists: this inventory's cluster has a CA`, { hint: `Move ${paths.dir} away first if you mean to replace it.` });
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await chmod(paths.dir, 0o700);
  await copyFile(expandHome(ca.cert), paths.cert);
  await chmod(paths.cert, 0o644);
  await copyFile(expandHome(ca.key), paths.key);
  await chmod(paths.key, 0o600);
}
