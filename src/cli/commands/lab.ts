import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadInventory } from '../../config/load.js';
import { firewallTable, removeFirewall } from '../../components/firewall.js';
import type { Inventory } from '../../config/schema.js';
import { LocalHost } from '../../hosts/local.js';
import { labDir, labDown } from '../../lab/lab.js';
import { createLogger, silentLogger, type Logger } from '../../output/log.js';
import { writeLabInventory } from '../../lab/init.js';
import { globals } from '../globals.js';
import { confirm } from '../prompt.js';
import { emitJson, withHostsLock } from '../setup.js';
import { upCommand } from './up.js';

export async function labInitCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ dir?: string; subnet: string; ssh?: boolean; force?: boolean }>();
  const g = globals(cmd);
  const file = await withHostsLock(cmd, () => writeLabInventory(g.config, o), { createsInventory: true });
  if (g.json) emitJson({ inventory: file });
}

export async function labUpCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ ssh?: boolean }>();
  const g = globals(cmd);
  // One lock for the whole run: `up` below takes it again (the lock is re-entrant within a process).
  await withHostsLock(cmd, async () => {
    if (!existsSync(resolve(g.config))) await writeLabInventory(g.config, { ...(o.ssh ? { ssh: true } : {}) });
    else {
      // After a reboot or `lab down` the inventory remains, but the lab's sshd does not.
      const inv = await loadInventory(g.config);
      const { ensureLabSshd, labUsesSsh } = await import('../../lab/ssh.js');
      if (labUsesSsh(inv)) await ensureLabSshd(inv, createLogger({ verbose: g.verbose }));
    }
    await upCommand(cmd);
  }, { createsInventory: true });
}

export async function labDownCommand(cmd: Command): Promise<void> {
  const g = globals(cmd);
  const inv = await loadInventory(g.config);
  const logger = createLogger({ verbose: g.verbose });
  if (g.dryRun) {
    // Checks everything a real run would, then only says what it would stop and remove.
    const r = await labDown(inv, logger, { dryRun: true });
    const firewall = await removeLabFirewalls(inv, logger, true);
    const dir = labDir(inv);
    const tables = firewall.length ? `${firewall.length} nftables table(s) (the firewall)` : '';
    const what = [r.removed.includes(dir) ? dir : r.removed.join(', '), tables].filter(Boolean).join(' and ') || 'nothing';
    logger.info(`Dry run: would stop ${r.stopped.length} processes and remove ${what}; nothing was changed.`);
    if (g.json) emitJson({ ...r, firewall });
    return;
  }
  await withHostsLock(cmd, async () => {
    // labDown checks ownership before touching anything; a dry pass first makes it refuse before the question, too.
    await labDown(inv, silentLogger, { dryRun: true });
    if (!(await confirm(g, `Stop every process of lab "${inv.cluster}" and delete its directory and data?`))) return;
    const r = await labDown(inv, logger);
    const firewall = await removeLabFirewalls(inv, logger, false);
    const dir = labDir(inv);
    const what = r.removed.includes(dir) ? dir : r.removed.join(', ');
    logger.info(r.removed.length ? `Removed ${what} (${r.stopped.length} processes stopped).` : 'Nothing to remove: the lab directory does not exist.');
    if (g.json) emitJson({ ...r, firewall });
  });
}

/**
 * Sprint 5's firewall tables. The lab's hosts are addresses of this machine,
 * so their tables are in this machine's nftables, named by address (each lab
 * its own); removed whether or not the lab's directories are still there.
 */
async function removeLabFirewalls(inv: Inventory, logger: Logger, dryRun: boolean): Promise<string[]> {
  const here = new LocalHost({ name: 'this machine', address: '127.0.0.1', dryRun, logger });
  const removed: string[] = [];
  for (const h of inv.hosts) {
    const table = firewallTable(inv, h);
    if (!(await removeFirewall(here, table))) continue;
    removed.push(table);
    if (!dryRun) logger.info(`Removed ${h.name}'s firewall (nftables table inet ${table}).`);
  }
  return removed;
}
