import type { Inventory } from '../config/schema.js';
import type { Node } from '../hosts/pool.js';
import { templateText } from '../templates.js';

/**
 * Patroni's watchdog. The leader-key fix keeps a woken old leader from
 * taking its key back; the watchdog keeps it from waking as a primary at all:
 * a primary whose Patroni stops renewing its lock is reset by the kernel
 * before the lock expires (safety_margin). On systemd hosts dpgc loads the
 * kernel's software watchdog (softdog), at boot too, and hands the device to
 * postgres (Patroni opens it). The lab's hosts share the operator's own
 * kernel, which dpgc never touches: there the check says there is none.
 */
export const WATCHDOG_DEVICE = '/dev/watchdog';

const FILES = [
  { template: 'watchdog/modules-load.conf', path: '/etc/modules-load.d/dpgc-watchdog.conf' },
  { template: 'watchdog/udev.rules', path: '/etc/udev/rules.d/60-dpgc-watchdog.rules' },
] as const;

export async function ensureWatchdog(inv: Pick<Inventory, 'patroni'>, node: Pick<Node, 'host' | 'spec'>): Promise<{ changed: boolean; note?: string }> {
  if (inv.patroni.watchdog === 'off') return { changed: false, note: 'watchdog off in the inventory' };
  if (node.spec.services !== 'systemd') return { changed: false, note: 'not on supervised (lab) hosts: they share this machine’s kernel' };
  let changed = false;
  for (const f of FILES) changed = (await node.host.writeFile(f.path, templateText(f.template), { mode: 0o644 })).changed || changed;
  const present = await node.host.exec(['test', '-c', WATCHDOG_DEVICE], { mutates: false, allowFailure: true });
  if (present.exitCode !== 0) {
    await node.host.exec(['modprobe', 'softdog']);
    changed = true;
  }
  const owner = await node.host.exec(['stat', '-c', '%U', WATCHDOG_DEVICE], { mutates: false, allowFailure: true });
  if (owner.stdout.trim() !== 'postgres') {
    // The udev rule applies from the next boot (or device event); this applies it now.
    await node.host.exec(['chown', 'postgres:postgres', WATCHDOG_DEVICE]);
    changed = true;
  }
  return { changed };
}

/** Each postgres host's device as Patroni would find it: missing, or owned by someone Patroni cannot open it as. */
export async function watchdogProblem(node: Pick<Node, 'host' | 'spec'>): Promise<string | undefined> {
  const r = await node.host.exec(['stat', '-L', '-c', '%F %U', WATCHDOG_DEVICE], { mutates: false, allowFailure: true });
  if (r.exitCode !== 0) return `${node.spec.name}: no ${WATCHDOG_DEVICE}`;
  if (!r.stdout.startsWith('character special file')) return `${node.spec.name}: ${WATCHDOG_DEVICE} is not a device`;
  const owner = r.stdout.trim().split(' ').pop();
  return owner === 'postgres' ? undefined : `${node.spec.name}: ${WATCHDOG_DEVICE} is owned by ${owner}, Patroni runs as postgres`;
}
