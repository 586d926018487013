import type { Host } from '../hosts/types.js';

/**
 * Debian packages: install only what is missing, so a re-run reports
 * "unchanged" and never touches apt. Every component goes through here.
 */

// Waits for another apt/dpkg (unattended-upgrades, a parallel task) instead of failing.
const APT = ['apt-get', '-o', 'DPkg::Lock::Timeout=300'];

export async function missingPackages(host: Host, pkgs: readonly string[]): Promise<string[]> {
  const r = await host.exec(['dpkg-query', '-W', '-f=${Package} ${Status}\n', ...pkgs], { mutates: false, allowFailure: true });
  const installed = new Set(
    r.stdout
      .split('\n')
      .filter((l) => l.endsWith(' install ok installed'))
      .map((l) => l.split(' ')[0]),
  );
  return pkgs.filter((p) => !installed.has(p));
}

/**
 * apt-get install of the missing ones only; `changed` when anything was
 * installed. `upgrade`: install every named package even when present, so apt
 * moves it to its (pinned) candidate.
 */
export async function installPackages(host: Host, pkgs: readonly string[], opts: { upgrade?: boolean } = {}): Promise<{ changed: boolean; note?: string }> {
  const missing = opts.upgrade ? [...pkgs] : await missingPackages(host, pkgs);
  if (!missing.length) return { changed: false };
  const env = { DEBIAN_FRONTEND: 'noninteractive', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  await host.exec([...APT, 'update', '-qq'], { env, timeoutMs: 600_000 });
  await host.exec([...APT, 'install', '-y', '-qq', '--no-install-recommends', ...missing], { env, timeoutMs: 1_200_000 });
  return { changed: true, note: `${opts.upgrade ? 'upgraded' : 'installed'} ${missing.join(' ')}` };
}

/** Whether apt can install a package (it has a candidate in the configured sources). */
export async function aptCandidate(host: Host, pkg: string): Promise<string | undefined> {
  const r = await host.exec(['apt-cache', 'policy', pkg], { mutates: false, allowFailure: true });
  const c = /Candidate:\s*(\S+)/.exec(r.stdout)?.[1];
  return c && c !== '(none)' ? c : undefined;
}

