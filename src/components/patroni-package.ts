import type { Node } from '../hosts/pool.js';
import type { Host } from '../hosts/types.js';
import type { Inventory } from '../config/schema.js';
import { ensureAptSources, type PackageSource } from './apt-sources.js';
import { disableDistroUnit } from './ha-packages.js';
import { installPackages, missingPackages } from './packages.js';

/**
 * Patroni with the leader-key fix. Before 3.0.3 a leader that stalled past
 * ttl (a paused VM, a hung host, a healed partition) wrote its leader key over
 * the new leader's when it woke, and every write the new leader had
 * acknowledged was lost (patroni/patroni#2689; the failover bench lost 795
 * rows with Debian 12's 3.0.2). Debian 12 ships 3.0.2, so on bookworm dpgc
 * takes Patroni from Debian 13: trixie is added as a source pinned *below*
 * bookworm, and only `patroni` and its one new dependency `python3-ydiff` are
 * pinned above it (verified with `apt-get -s`: nothing else moves; every
 * other dependency, python3 included, stays bookworm's). Debian 13 and later
 * ship a fixed Patroni of their own. The same two files are what
 * scripts/install-lab-deps.sh installs for CI.
 */
export const LEADER_KEY_FIX = '3.0.3';

/** Whether a Patroni version string (as its REST API reports it: `4.0.7`) has the leader-key fix. */
export function hasLeaderKeyFix(version: string): boolean {
  const fix = LEADER_KEY_FIX.split('.').map(Number);
  const v = version.split(/[.+~-]/).slice(0, 3).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    if ((v[i] ?? 0) !== fix[i]) return (v[i] ?? 0) > fix[i]!;
  }
  return true;
}

/**
 * The packages that carry Patroni, with etcd support, on a host of this
 * release. Patroni's package depends on *one* of its DCS client libraries,
 * and trixie's apt satisfies that with python3-consul (it needs it anyway),
 * so the etcd client (`python3-etcd`, which Patroni's etcd3 module imports)
 * must be named, or Patroni dies with "Can not find suitable configuration
 * of distributed configuration store".
 */
export function patroniPackages(codename: string, source: PackageSource): string[] {
  return codename === 'bookworm' && source === 'debian' ? ['patroni', 'python3-ydiff', 'python3-etcd'] : ['patroni', 'python3-etcd'];
}

export async function osCodename(host: Host): Promise<string> {
  const text = (await host.readFile('/etc/os-release')) ?? '';
  return /^VERSION_CODENAME=("?)([a-z]+)\1$/m.exec(text)?.[2] ?? 'unknown';
}

/** The installed package's version, or undefined when it is not installed. */
export async function installedVersion(host: Host, pkg: string): Promise<string | undefined> {
  const r = await host.exec(['dpkg-query', '-W', '-f=${Status}|${Version}', pkg], { mutates: false, allowFailure: true });
  const [status, version] = r.stdout.split('|');
  return r.exitCode === 0 && status === 'install ok installed' && version ? version : undefined;
}

/** dpkg's own comparison (epochs, tildes and Debian revisions included), run on the host. */
export async function versionAtLeast(host: Host, version: string, min: string): Promise<boolean> {
  const r = await host.exec(['dpkg', '--compare-versions', version, 'ge', min], { mutates: false, allowFailure: true });
  return r.exitCode === 0;
}

/**
 * Installs Patroni, or upgrades one that lacks the fix, from the source the
 * host's release needs. `true` when anything changed. A running member keeps
 * the old code until it is restarted: sprint 3 rolls that restart through the
 * cluster (`rollingRestartOutdated`).
 */
export async function installPatroni(inv: Pick<Inventory, 'packages'>, node: Pick<Node, 'host' | 'spec'>): Promise<boolean> {
  const host = node.host;
  const codename = await osCodename(host);
  const sourcesChanged = await ensureAptSources(host, codename, inv.packages.source);
  const pkgs = patroniPackages(codename, inv.packages.source);
  const current = await installedVersion(host, 'patroni');
  const outdated = current !== undefined && !(await versionAtLeast(host, current, LEADER_KEY_FIX));
  const missing = await missingPackages(host, pkgs);
  if (!missing.length && !outdated) return sourcesChanged;
  // An outdated patroni is installed: name it again so apt upgrades it to the pinned candidate.
  const r = await installPackages(host, outdated ? pkgs : missing, { upgrade: outdated });
  if (node.spec.services === 'systemd' && current === undefined) await disableDistroUnit(node, ['patroni.service']);
  return r.changed || sourcesChanged;
}
