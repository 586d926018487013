import type { Node } from '../hosts/pool.js';
import { installPackages, missingPackages } from './packages.js';

/**
 * Debian packages for the HA layer (etcd, Patroni, HAProxy), installed only
 * when missing, and the distribution's own units for them kept out of the
 * way: dpgc runs these daemons as its own services, and Debian's units would
 * bind the same ports (and, for HAProxy, read the same config file).
 */
export const HA_PACKAGES = {
  etcd: ['etcd-server', 'etcd-client'],
  haproxy: ['haproxy', 'socat'],
} as const;

/** Installs what is missing; `true` when something was installed. */
export async function ensurePackages(node: Pick<Node, 'host' | 'spec'>, pkgs: readonly string[]): Promise<boolean> {
  const missing = await missingPackages(node.host, pkgs);
  if (!(await installPackages(node.host, missing)).changed) return false;
  if (node.spec.services === 'systemd') await disableDistroUnit(node, distroUnitFor(missing));
  return true;
}

function distroUnitFor(pkgs: readonly string[]): string[] {
  const units: string[] = [];
  if (pkgs.includes('etcd-server')) units.push('etcd.service');
  if (pkgs.includes('haproxy')) units.push('haproxy.service');
  return units;
}

/** Stops and disables the distribution's unit (systemd hosts only); dpgc's own unit is dpgc-<name>. */
export async function disableDistroUnit(node: Pick<Node, 'host' | 'spec'>, units: string[]): Promise<boolean> {
  if (node.spec.services !== 'systemd' || !units.length) return false;
  let changed = false;
  for (const u of units) {
    const r = await node.host.exec(['systemctl', 'is-enabled', u], { mutates: false, allowFailure: true });
    const a = await node.host.exec(['systemctl', 'is-active', u], { mutates: false, allowFailure: true });
    if (r.stdout.trim() === 'enabled' || a.stdout.trim() === 'active') {
      await node.host.exec(['systemctl', 'disable', '--now', u]);
      changed = true;
    }
  }
  return changed;
}
