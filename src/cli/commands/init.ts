import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { parseInventory } from '../../config/load.js';
import type { InventoryInput } from '../../config/schema.js';
import { UsageError } from '../../errors.js';
import { createLogger } from '../../output/log.js';
import { globals } from '../main.js';
import { askText } from '../prompt.js';

/**
 * Guided first-time setup: all questions first, then one validated write.
 * Without a TTY every answer must come from flags, so this command is for
 * people; CI writes its inventory itself.
 */
export async function initCommand(cmd: Command): Promise<void> {
  const g = globals(cmd);
  const { force } = cmd.opts<{ force?: boolean }>();
  const file = resolve(g.config);
  // Checked first: with --force added, a CI run would only fail here next.
  if (g.nonInteractive) {
    throw new UsageError('`dpgc init` asks questions, and cannot ask here: not interactive (CI, --yes, or no TTY)', {
      hint: `Write ${file} yourself (README "The inventory"; \`dpgc schema\` for editor checks), or run \`dpgc lab init\` for a cluster on this machine.`,
    });
  }
  if (existsSync(file) && !force) throw new UsageError(`${file} already exists`, { hint: 'Pass --force to overwrite it, or -c <file> to write another.' });
  const cluster = await askText(g, 'Cluster name (Patroni scope)', '', 'main', (v) => /^[a-z][a-z0-9_-]{0,62}$/.test(v) || 'lowercase letters, digits, _ and -');
  const user = await askText(g, 'SSH user on the hosts', '', 'root');
  const key = await askText(g, 'SSH private key', '', '~/.ssh/id_ed25519');
  const hosts: InventoryInput['hosts'] = [];
  for (let i = 1; i <= 3; i++) {
    const address = await askText(g, `Address of database host db${i}`, '', undefined, (v) => /^\d+\.\d+\.\d+\.\d+$/.test(v) || 'an IPv4 address');
    hosts.push({ name: `db${i}`, address, roles: i === 1 ? ['postgres', 'etcd', 'haproxy', 'pgbouncer', 'monitoring', 'backup'] : ['postgres', 'etcd'] });
  }
  const cidr = await askText(g, 'Network allowed to connect (CIDR)', '', `${hosts[0]!.address.split('.').slice(0, 3).join('.')}.0/24`);
  const inv: InventoryInput = { cluster, network: { allowed_cidrs: [cidr] }, defaults: { transport: 'ssh', ssh: { user, key } }, hosts };
  const text = stringify(inv);
  const r = parseInventory(text, file);
  if (!r.inventory) throw new UsageError(`the answers do not make a valid inventory:\n${r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
  await writeFile(file, text);
  createLogger().info(`Wrote ${file}. Next: \`dpgc sprint 0 -c ${g.config}\`.`);
}
