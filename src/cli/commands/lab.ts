import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { loadInventory } from '../../config/load.js';
import { UsageError } from '../../errors.js';
import { labDown } from '../../lab/lab.js';
import { labInventoryYaml } from '../../lab/inventory.js';
import { createLogger } from '../../output/log.js';
import { globals } from '../main.js';
import { confirm } from '../prompt.js';
import { emitJson } from '../setup.js';
import { upCommand } from './up.js';

export async function labInitCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ dir?: string; subnet: string; ssh?: boolean; force?: boolean }>();
  const g = globals(cmd);
  const file = await writeLabInventory(g.config, o);
  if (g.json) emitJson({ inventory: file });
}

export async function writeLabInventory(config: string, o: { dir?: string; subnet?: string; ssh?: boolean; force?: boolean }): Promise<string> {
  const logger = createLogger();
  const file = resolve(config);
  const subnet = o.subnet ?? '127.0.0';
  if (!/^127\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)$/.test(subnet)) {
    throw new UsageError(`--subnet must be three octets inside 127.0.0.0/8 (the lab binds loopback only), got "${subnet}"`);
  }
  if (existsSync(file) && !o.force) {
    throw new UsageError(`${file} already exists`, { hint: 'Pass --force to overwrite it, or -c <file> to write another.' });
  }
  const dir = resolve(o.dir ?? `${dirname(file)}/.dpgc-lab`);
  let ssh: { port: number; key: string; knownHosts: string } | undefined;
  if (o.ssh) {
    const { prepareLabSsh } = await import('../../lab/ssh.js');
    ssh = await prepareLabSsh(dir, subnet, logger);
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, labInventoryYaml({ dir, subnet, ...(ssh ? { ssh } : {}) }));
  if (ssh) {
    const { ensureLabSshd } = await import('../../lab/ssh.js');
    await ensureLabSshd(await loadInventory(file), logger);
  }
  logger.info(`Wrote lab inventory ${file} (hosts on ${subnet}.10-13, lab directory ${dir}${ssh ? ', over SSH' : ''}).`);
  logger.info('Next: `dpgc up` runs every sprint on it.');
  return file;
}

export async function labUpCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ ssh?: boolean }>();
  const g = globals(cmd);
  if (!existsSync(resolve(g.config))) await writeLabInventory(g.config, { ...(o.ssh ? { ssh: true } : {}) });
  else {
    // After a reboot or `lab down` the inventory remains, but the lab's sshd does not.
    const inv = await loadInventory(g.config);
    const { ensureLabSshd, labUsesSsh } = await import('../../lab/ssh.js');
    if (labUsesSsh(inv)) await ensureLabSshd(inv, createLogger({ verbose: g.verbose }));
  }
  await upCommand(cmd);
}

export async function labDownCommand(cmd: Command): Promise<void> {
  const g = globals(cmd);
  const inv = await loadInventory(g.config);
  const logger = createLogger({ verbose: g.verbose });
  if (!(await confirm(g, `Stop every process of lab "${inv.cluster}" and delete its directory and data?`))) return;
  const r = await labDown(inv, logger);
  logger.info(r.removed ? `Removed ${r.removed} (${r.stopped.length} processes stopped).` : 'Nothing to remove: the lab directory does not exist.');
  if (g.json) emitJson(r);
}
