import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, posix } from 'node:path';
import { ConfigError, UsageError } from '../errors.js';
import { pathProblem } from '../hosts/owned.js';

/**
 * What dpgc made, recorded where it made it: `lab init` (and any command that
 * re-creates a removed lab) writes MARKER into the lab directory, each host
 * root and the lab's ssh directory, naming the inventory they belong to.
 * `lab down` deletes only directories whose marker names its inventory, so a
 * typo in `root:`, `--dir /tmp` or a path through `..` can never reach a
 * directory dpgc did not create.
 */
export const MARKER = '.dpgc-lab';

export type MarkerKind = 'lab' | 'host' | 'ssh';
/** `lab init --dir` is a flag (usage error); a lab re-created from an inventory is configuration. */
type ErrorKind = 'usage' | 'config';

export interface Marker {
  dpgc: MarkerKind;
  inventory: string;
  cluster: string;
  /** The host, for a host root. */
  host?: string;
  created: string;
}

export function readMarker(dir: string): Marker | undefined {
  try {
    const m = JSON.parse(readFileSync(`${dir}/${MARKER}`, 'utf8')) as Partial<Marker>;
    if (typeof m.dpgc === 'string' && typeof m.inventory === 'string' && typeof m.cluster === 'string') return m as Marker;
  } catch {
    // Missing or unreadable: not ours.
  }
  return undefined;
}

/** True when `dir` carries a marker of `kind` naming `inventory` (and `host`). */
export function ownedBy(dir: string, inventory: string, kind: MarkerKind, host?: string): boolean {
  const m = readMarker(dir);
  return m !== undefined && m.dpgc === kind && m.inventory === inventory && (host === undefined || m.host === host);
}

/**
 * Creates `dir` (by default mode 0755: daemons running as their own users traverse it)
 * and its marker. A directory that exists is adopted only when it is empty or
 * already carries this inventory's marker.
 */
export async function claimDir(dir: string, m: Omit<Marker, 'created'>, as: ErrorKind = 'usage', mode = 0o755): Promise<void> {
  if (existsSync(dir)) {
    if (ownedBy(dir, m.inventory, m.dpgc, m.host)) return;
    refuseForeign(dir, m.inventory, as);
  }
  await mkdir(dir, { recursive: true });
  await chmod(dir, mode);
  await writeFile(`${dir}/${MARKER}`, `${JSON.stringify({ ...m, created: new Date().toISOString() })}\n`, { mode: 0o644 });
}

/** Throws unless `dir` is missing, empty, or already this inventory's (any kind of) dpgc directory. */
export function refuseForeign(dir: string, inventory: string, as: ErrorKind = 'usage'): void {
  const Err = as === 'usage' ? UsageError : ConfigError;
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new Err(`${dir} exists and is not a directory; the lab needs a directory of its own`, { hint: 'Choose another --dir.' });
  const m = readMarker(dir);
  if (m && m.inventory !== inventory) {
    throw new Err(`${dir} belongs to another dpgc lab (inventory ${m.inventory}); two inventories must not share a lab directory`, {
      hint: `Choose another --dir, or remove that lab first: dpgc lab down -c ${m.inventory}.`,
    });
  }
  if (!m && readdirSync(dir).length > 0) {
    throw new Err(`${dir} exists, is not empty, and was not made by dpgc (no ${MARKER} marker): dpgc will not put a lab in it, since \`lab down\` would delete it`, {
      hint: 'Choose a new or empty directory with --dir (the default is .dpgc-lab beside the inventory).',
    });
  }
}

/** Top-level trees a lab must never be, nor be inside (a lab in /usr/x would be removed with its parent's blessing). */
const SYSTEM_TREES = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/sbin', '/sys', '/usr'];
/** Directories a lab may live below, but never be. */
const SYSTEM_DIRS = ['/', '/home', '/media', '/mnt', '/opt', '/root', '/run', '/srv', '/tmp', '/var', '/var/lib', '/var/tmp', '/var/log', '/var/cache', '/var/run'];

/** Throws unless `dir` may be made a lab directory: a clean path, not a system directory, not someone's home. */
export function checkLabDirPath(dir: string, as: ErrorKind = 'usage'): void {
  const Err = as === 'usage' ? UsageError : ConfigError;
  const problem = pathProblem(dir);
  if (problem) throw new Err(`the lab directory ${JSON.stringify(dir)} is unsafe: ${problem}`);
  const real = existingRealpath(dir);
  const home = homedir();
  for (const p of new Set([dir, real])) {
    if (SYSTEM_DIRS.includes(p) || p === home || SYSTEM_TREES.some((t) => p === t || p.startsWith(`${t}/`))) {
      throw new Err(`refusing ${dir} as a lab directory${p === dir ? '' : ` (it is ${p})`}: it is a system directory${p === home ? ' (your home)' : ''}, and \`lab down\` deletes the lab directory`, {
        hint: 'Pass a new directory below it instead, e.g. --dir /tmp/my-lab (the default is .dpgc-lab beside the inventory).',
      });
    }
  }
}

/** realpath of the longest existing prefix of `p`, with the rest appended: where a path would really land. */
function existingRealpath(p: string): string {
  let head = p;
  let tail = '';
  while (!existsSync(head) && head !== '/') {
    tail = `/${posix.basename(head)}${tail}`;
    head = dirname(head);
  }
  return posix.normalize(`${realpathSync(head)}${tail}`).replace(/(.)\/$/, '$1');
}
