import { HostError } from '../errors.js';
import type { Host } from '../hosts/types.js';
import { templateText } from '../templates.js';

/**
 * The apt sources dpgc adds to a host, rendered from templates/apt. Where
 * Patroni comes from depends on the release and on `packages.source`:
 *  - Debian 12 with `debian` (the default): trixie, from the mirror the host
 *    already uses (a host behind its own mirror keeps using it), pinned so
 *    that only Patroni and its one new dependency come from it;
 *  - `pgdg`: the PostgreSQL project's repository for the host's release;
 *  - Debian 13 and later with `debian`: nothing to add.
 * scripts/install-lab-deps.sh fills the same templates the same way.
 */
export type PackageSource = 'debian' | 'pgdg';

export interface AptFile {
  path: string;
  content: string;
}

/**
 * The Debian archive URI serving `codename` in a host's apt sources (deb822
 * `.sources` or one-line `.list` text); undefined when none does.
 */
export function debianMirror(sourcesText: string, codename: string): string | undefined {
  for (const stanza of sourcesText.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
    if (!field('Types').includes('deb') || !field('Suites').includes(codename)) continue;
    const uri = field('URIs').find((u) => /^https?:\/\/\S+\/debian\/?$/.test(u));
    if (uri) return uri.replace(/\/$/, '');
  }
  for (const line of sourcesText.split('\n')) {
    const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+\/debian)\/?\s+(\S+)\s/.exec(line);
    if (m && m[2] === codename) return m[1];
  }
  return undefined;
}

/** Pure: the files for this release and source (empty when the release's own Patroni has the fix). */
export function aptFilesFor(codename: string, source: PackageSource, mirror: string | undefined): AptFile[] {
  if (source === 'pgdg') {
    return [{ path: '/etc/apt/sources.list.d/dpgc-pgdg.sources', content: templateText('apt/pgdg.sources').replace('@CODENAME@', codename) }];
  }
  if (codename !== 'bookworm') return [];
  if (!mirror) {
    throw new HostError('no Debian mirror serving bookworm was found in the host’s apt sources, so Patroni cannot be taken from Debian 13 the same way', {
      hint: 'Add the Debian archive (or your mirror of it) to /etc/apt/sources.list.d/debian.sources, or set packages.source: pgdg in the inventory.',
    });
  }
  return [
    { path: '/etc/apt/sources.list.d/dpgc-trixie.sources', content: templateText('apt/trixie.sources').replace('@MIRROR@', mirror) },
    { path: '/etc/apt/preferences.d/dpgc-patroni.pref', content: templateText('apt/dpgc-patroni.pref') },
  ];
}

/** Reads the host's apt sources and writes the files it needs; `true` when one changed. */
export async function ensureAptSources(host: Host, codename: string, source: PackageSource): Promise<boolean> {
  let mirror: string | undefined;
  if (source === 'debian' && codename === 'bookworm') {
    // A shell for the globs only: the script is a constant, nothing is interpolated into it.
    const ls = await host.exec(['sh', '-c', 'cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null'], { mutates: false, allowFailure: true });
    mirror = debianMirror(ls.stdout, codename);
  }
  let changed = false;
  for (const f of aptFilesFor(codename, source, mirror)) changed = (await host.writeFile(f.path, f.content, { mode: 0o644 })).changed || changed;
  return changed;
}
