import type { Node } from '../hosts/pool.js';

/**
 * Debian packages for the HA layer (etcd, Patroni, HAProxy), installed only
 * when missing, and the distribution's own units for them kept out of the
 * way: dpgc runs these daemons as its own services, and Debian's units would
 * bind the same ports (and, for HAProxy, read the same config file).
 */
export const HA_PACKAGES = {
  etcd: ['etcd-server', 'etcd-client'],
  patroni: ['patroni'],
  haproxy: ['haproxy', 'socat'],
} as const;

export async function missingPackages(node: Pick<Node, 'host'>, pkgs: readonly string[]): Promise<string[]> {
  const r = await node.host.exec(['dpkg-query', '-W', '-f', '${Package} ${Status}\n', ...pkgs], { mutates: false, allowFailure: true });
  const ok = new Set(
    r.stdout
      .split('\n')
      .filter((l) => l.endsWith('install ok installed'))
      .map((l) => l.split(' ')[0]),
  );
  return pkgs.filter((p) => !ok.has(p));
}

/** Installs what is missing; `true` when something was installed. */
export async function ensurePackages(node: Pick<Node, 'host' | 'spec'>, pkgs: readonly string[]): Promise<boolean> {
  const missing = await missingPackages(node, pkgs);
  if (!missing.length) return false;
  const env = { DEBIAN_FRONTEND: 'noninteractive', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  await node.host.exec(['apt-get', 'update', '-qq'], { env, timeoutMs: 300_000 });
  await node.host.exec(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing], { env, timeoutMs: 600_000 });
  if (node.spec.services === 'systemd') await disableDistroUnit(node, distroUnitFor(missing));
  return true;
}

function distroUnitFor(pkgs: readonly string[]): string[] {
  const units: string[] = [];
  if (pkgs.includes('etcd-server')) units.push('etcd.service');
  if (pkgs.includes('patroni')) units.push('patroni.service');
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
