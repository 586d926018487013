import type { HostFacts } from '../config/sizing.js';
import { HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';

/**
 * Before anything changes on a host: a supported OS, root (or passwordless
 * sudo), free disk, and the ports dpgc will bind either free or held by
 * dpgc's own services. Facts are gathered by a few read-only commands and
 * judged by pure functions, so the judgement is unit tested.
 */
export const MIN_FREE_BYTES = 2 * 1024 ** 3;
export const WARN_FREE_BYTES = 10 * 1024 ** 3;

export interface OsRelease {
  id: string;
  idLike: string[];
  versionId: string;
  prettyName: string;
}

export function parseOsRelease(text: string): OsRelease {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) kv.set(m[1]!, m[2]!.replace(/^["']|["']$/g, ''));
  }
  return {
    id: kv.get('ID') ?? '',
    idLike: (kv.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean),
    versionId: kv.get('VERSION_ID') ?? '',
    prettyName: kv.get('PRETTY_NAME') ?? kv.get('NAME') ?? 'an unknown OS',
  };
}

/** undefined when supported, else why not. Debian 12+ and Ubuntu 22.04+ only: the package names and paths dpgc uses are theirs. */
export function unsupportedOs(os: OsRelease): string | undefined {
  const [major = NaN, minor = 0] = os.versionId.split('.').map(Number);
  if (os.id === 'debian' && major >= 12) return undefined;
  if (os.id === 'ubuntu' && (major > 22 || (major === 22 && minor >= 4))) return undefined;
  return `${os.prettyName} is not supported: dpgc needs Debian 12 (bookworm) or newer, or Ubuntu 22.04 or newer`;
}

export interface Listener {
  address: string;
  port: number;
  process?: string;
  pid?: number;
}

/** `ss -ltnpH` lines → listeners. IPv6 addresses come bracketed: `[::]:5432`. */
export function parseSsListeners(text: string): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[0] !== 'LISTEN') continue;
    const local = f[3]!;
    const i = local.lastIndexOf(':');
    const address = local.slice(0, i).replace(/%\S+$/, '');
    const port = Number(local.slice(i + 1));
    const u = /users:\(\("([^"]+)",pid=(\d+)/.exec(line);
    out.push({ address, port, ...(u ? { process: u[1]!, pid: Number(u[2]) } : {}) });
  }
  return out;
}

const WILDCARDS = new Set(['*', '0.0.0.0', '[::]', '::']);

/** Listeners that take `address:port` from us: the same address, or a wildcard bind. */
export function clashes(listeners: Listener[], address: string, port: number): Listener[] {
  return listeners.filter((l) => l.port === port && (l.address === address || WILDCARDS.has(l.address)));
}

/** Free bytes from `df -Pk` output (second line, fourth column, in KiB). */
export function parseDfAvailable(text: string): number | undefined {
  const line = text.trim().split('\n')[1];
  const kib = Number(line?.trim().split(/\s+/)[3]);
  return Number.isFinite(kib) ? kib * 1024 : undefined;
}

/** Free bytes on the volume that holds `path` (or would: its nearest existing parent); undefined when df says nothing usable. */
export async function freeBytes(host: Pick<Node['host'], 'exec'>, path: string): Promise<number | undefined> {
  // Why sh: a loop up to the nearest existing parent; the path is "$1", never spliced in.
  const df = await host.exec(['sh', '-c', 'p="$1"; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done; df -Pk -- "$p"', 'sh', path], { mutates: false, allowFailure: true });
  return parseDfAvailable(df.stdout);
}

export function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

export interface PreflightResult {
  warnings: string[];
  /** What PostgreSQL is sized on (src/config/sizing.ts). */
  facts: HostFacts;
}

/**
 * One read-only round trip for what sizing needs: MemTotal, the CPU count,
 * the kernel's boot id (hosts sharing one machine report the same), reserved
 * huge pages, and whether the disk under `path` rotates. The disk is found
 * from the path's device number (/sys/dev/block/MAJ:MIN, its parent's queue
 * for a partition); where that has no queue (overlay, tmpfs) every real disk
 * in /sys/block is listed instead.
 */
const FACTS_SCRIPT = [
  'p="$1"; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done',
  "echo \"mem $(awk '/^MemTotal:/{print $2}' /proc/meminfo)\"",
  "echo \"huge $(awk '/^HugePages_Total:/{print $2}' /proc/meminfo)\"",
  'echo "cpus $(nproc)"',
  'echo "boot $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"',
  'd=$((0x$(stat -c %D -- "$p"))); maj=$(( (d >> 8) & 0xfff )); min=$(( (d & 0xff) | ((d >> 12) & 0xfff00) ))',
  'b=/sys/dev/block/$maj:$min',
  'if [ -r "$b/queue/rotational" ]; then echo "rot dev $(cat "$b/queue/rotational")";',
  'elif [ -r "$b/../queue/rotational" ]; then echo "rot dev $(cat "$b/../queue/rotational")";',
  'else for q in /sys/block/*/queue/rotational; do n=${q#/sys/block/}; n=${n%%/*}; case $n in loop*|ram*|zram*|nbd*) continue;; esac; echo "rot disk $n $(cat "$q")"; done; fi',
].join('\n');

/** FACTS_SCRIPT's output → facts (pure). */
export function parseHostFacts(text: string): HostFacts {
  const kv = new Map<string, string>();
  const disks: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\w+) (.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'rot' && m[2]!.startsWith('disk ')) disks.push(m[2]!.split(' ')[2] ?? '');
    else kv.set(m[1] === 'rot' ? 'rotdev' : m[1]!, m[2]!.replace(/^dev /, '').trim());
  }
  const memKib = Number(kv.get('mem'));
  const cpus = Number(kv.get('cpus'));
  const dev = kv.get('rotdev');
  const rotational = dev === '1' ? true : dev === '0' ? false : disks.length ? disks.some((d) => d !== '0') : undefined;
  const huge = Number(kv.get('huge'));
  return {
    memoryBytes: Number.isFinite(memKib) ? memKib * 1024 : 0,
    cpus: Number.isInteger(cpus) && cpus > 0 ? cpus : 1,
    rotational,
    ...(kv.get('boot') ? { machine: kv.get('boot') } : {}),
    ...(Number.isFinite(huge) ? { hugePagesTotal: huge } : {}),
  };
}

/** The facts PostgreSQL is sized on, read on the host that will run it (read-only; runs under --dry-run too). */
export async function readHostFacts(node: Pick<Node, 'host'>, dataPath: string): Promise<HostFacts> {
  const r = await node.host.exec(['sh', '-c', FACTS_SCRIPT, 'sh', dataPath], { mutates: false, allowFailure: true });
  const facts = parseHostFacts(r.stdout);
  if (!facts.memoryBytes) throw new HostError(`${node.host.name}: cannot read MemTotal from /proc/meminfo (${r.stderr.trim() || 'no output'})`, { hint: 'dpgc sizes PostgreSQL from the host\'s memory: a Linux host with /proc mounted is needed.' });
  return facts;
}

/** A PostgreSQL host with less than this is refused: a base instance, its WAL and a vector index build do not fit. */
export const MIN_MEMORY_BYTES = 1 * 1024 ** 3;

export interface PortClaim {
  port: number;
  /** dpgc's own services that may already hold it (a re-run). */
  services: string[];
  /** A held port is ours when its process's command line names this path (Patroni's postmaster, say). */
  ownPath?: string;
  /**
   * A PostgreSQL socket lock file for this port: a postmaster on another
   * address but the same socket directory (Debian's own cluster on
   * localhost) would stop ours from starting just as surely.
   */
  socketLock?: string;
}

/**
 * Throws HostError (exit 4) naming every problem; returns warnings. Never
 * stops or kills anything: a port held by something dpgc did not start is
 * the operator's decision.
 */
export async function preflight(node: Node, opts: { diskPath: string; ports: PortClaim[] }): Promise<PreflightResult> {
  const { host, spec } = node;
  const problems: string[] = [];
  const warnings: string[] = [];

  const uid = await host.exec(['id', '-u'], { mutates: false, allowFailure: true });
  if (uid.exitCode !== 0 || uid.stdout.trim() !== '0') {
    problems.push(`dpgc needs root on ${host.name}: connect as root, or as a user with passwordless sudo and \`ssh.sudo: true\` (got ${uid.exitCode === 0 ? `uid ${uid.stdout.trim()}` : uid.stderr.trim() || 'no answer'})`);
  }

  const osText = await host.readFile('/etc/os-release');
  const osProblem = osText === undefined ? 'no /etc/os-release: cannot tell which OS this is' : unsupportedOs(parseOsRelease(osText));
  if (osProblem) problems.push(osProblem);

  const free = await freeBytes(host, opts.diskPath);
  if (free === undefined) warnings.push(`could not measure free disk for ${opts.diskPath}`);
  else if (free < MIN_FREE_BYTES) problems.push(`only ${gib(free)} free for ${opts.diskPath}; dpgc needs at least ${gib(MIN_FREE_BYTES)}`);
  else if (free < WARN_FREE_BYTES) warnings.push(`${gib(free)} free for ${opts.diskPath}; ${gib(WARN_FREE_BYTES)} or more is advised for WAL and vector indexes`);

  const ss = await host.exec(['ss', '-ltnpH'], { mutates: false, allowFailure: true });
  if (ss.exitCode !== 0) problems.push(`cannot list listening ports with \`ss -ltnp\` (install iproute2): ${ss.stderr.trim()}`);
  const listeners = parseSsListeners(ss.stdout);
  for (const claim of opts.ports) {
    for (const l of clashes(listeners, spec.address, claim.port)) {
      if (await isOurs(node, l, claim)) continue;
      const who = l.process ? `${l.process} (pid ${l.pid})` : 'a process dpgc cannot see';
      problems.push(
        `port ${claim.port} on ${spec.address} is held by ${who} listening on ${l.address}:${l.port}, which dpgc did not start. ` +
          `dpgc never stops what it did not start: stop it yourself (for Debian's own cluster: \`pg_lsclusters\`, then \`pg_ctlcluster <version> main stop\` and ` +
          `set it to manual in start.conf), or choose another port in the inventory (ports:), then run again`,
      );
    }
  }
  for (const claim of opts.ports) {
    if (!claim.socketLock) continue;
    const lock = await host.readFile(claim.socketLock);
    const pid = Number(lock?.split('\n')[0]);
    if (!pid) continue;
    // Why sh: a redirect from /proc; the pid is "$1" (a number), never spliced in.
    const alive = await host.exec(['sh', '-c', 'tr "\\0" " " < /proc/$1/cmdline', 'sh', String(pid)], { mutates: false, allowFailure: true });
    if (alive.exitCode !== 0 || (await isOurs(node, { address: '', port: claim.port, pid }, claim))) continue;
    problems.push(
      `${claim.socketLock} belongs to a running PostgreSQL that dpgc did not start (pid ${pid}: ${alive.stdout.trim().slice(0, 120)}); ` +
        `two postmasters cannot share one socket directory and port. Stop that cluster yourself, or choose another port in the inventory (ports:), then run again`,
    );
  }
  const facts = await readHostFacts(node, opts.diskPath);
  if (facts.memoryBytes < MIN_MEMORY_BYTES) problems.push(`${host.name} has ${gib(facts.memoryBytes)} of memory; dpgc needs at least ${gib(MIN_MEMORY_BYTES)} for PostgreSQL`);
  if (problems.length) {
    throw new HostError(`preflight failed on ${host.name}:\n  - ${problems.join('\n  - ')}`, { hint: 'Nothing was changed on any host.' });
  }
  return { warnings, facts };
}

async function isOurs(node: Node, l: Listener, claim: PortClaim): Promise<boolean> {
  if (l.pid === undefined) return false;
  for (const name of claim.services) {
    const st = await node.services.status({ name });
    if (st.running && st.pid === l.pid) return true;
  }
  if (!claim.ownPath) return false;
  // Why sh: a redirect from /proc; the pid is "$1" (a number), never spliced in.
  const cmd = await node.host.exec(['sh', '-c', 'tr "\\0" " " < /proc/$1/cmdline', 'sh', String(l.pid)], { mutates: false, allowFailure: true });
  return cmd.stdout.split(' ').includes(claim.ownPath);
}
