import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { loadInventory } from '../config/load.js';
import { UsageError } from '../errors.js';
import { createLogger } from '../output/log.js';
import { labInventoryYaml, LAB_HOSTS } from './inventory.js';
import { checkLabDirPath, claimDir, refuseForeign } from './marker.js';

/**
 * Writes the lab inventory and creates the lab directory and host roots, each
 * with dpgc's marker (src/lab/marker.ts): what `lab down` may later remove.
 * The caller holds the cluster's lock.
 */
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
  // Every check before the first write: a refused --dir leaves nothing behind.
  checkLabDirPath(dir);
  if (existsSync(dir)) refuseForeign(dir, file);
  for (const h of LAB_HOSTS) if (existsSync(`${dir}/${h.name}`)) refuseForeign(`${dir}/${h.name}`, file);
  const base = { inventory: file, cluster: 'dpgc-lab' };
  await claimDir(dir, { ...base, dpgc: 'lab' });
  for (const h of LAB_HOSTS) await claimDir(`${dir}/${h.name}`, { ...base, dpgc: 'host', host: h.name });
  let ssh: { port: number; key: string; knownHosts: string } | undefined;
  if (o.ssh) {
    const { prepareLabSsh } = await import('./ssh.js');
    ssh = await prepareLabSsh(dir, subnet, logger, base);
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, labInventoryYaml({ dir, subnet, ...(ssh ? { ssh } : {}) }));
  if (ssh) {
    const { ensureLabSshd } = await import('./ssh.js');
    await ensureLabSshd(await loadInventory(file), logger);
  }
  logger.info(`Wrote lab inventory ${file} (hosts on ${subnet}.10-13, lab directory ${dir}${ssh ? ', over SSH' : ''}).`);
  logger.info('Next: `dpgc up` runs every sprint on it.');
  return file;
}
