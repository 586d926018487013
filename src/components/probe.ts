import type { HostFacts } from '../config/sizing.js';
import type { Host } from '../hosts/types.js';
import { freeBytes, gib, MIN_FREE_BYTES, MIN_MEMORY_BYTES, parseOsRelease, readHostFacts, unsupportedOs, WARN_FREE_BYTES, type OsRelease } from './preflight.js';

/**
 * What `dpgc init` learns about a host the moment it is entered: the same
 * read-only facts and the same limits as sprint 0's preflight (preflight.ts),
 * gathered before an inventory exists, so a wrong key, a missing sudo or a
 * full disk is met at the question instead of in the middle of sprint 0.
 * Gathering is a few commands; judging is the pure `judgeProbe`.
 */
export interface ProbeFacts {
  /** `id -u` as dpgc will run commands (through `sudo -n` for a non-root user). */
  uid: string | undefined;
  /** Why `id -u` failed (sudo refused, not installed…). */
  privilegeError: string | undefined;
  os: OsRelease | undefined;
  facts: HostFacts | undefined;
  freeBytes: number | undefined;
  /** `yes`/`no` from timedatectl or chronyc; `unknown` when neither answers (no systemd, no chrony). */
  timeSync: 'yes' | 'no' | 'unknown';
}

export interface ProbeVerdict {
  facts: ProbeFacts;
  /** Each says what is wrong and what to do: the host is refused. */
  problems: string[];
  warnings: string[];
}

/**
 * Why sh: two tools tried in order, in one round trip. timedatectl exists where
 * systemd runs; chronyc where chrony keeps time without it.
 */
const TIME_SYNC_SCRIPT = [
  'v=$(timedatectl show -p NTPSynchronized --value 2>/dev/null) && [ -n "$v" ] && { echo "$v"; exit 0; }',
  "l=$(chronyc -n tracking 2>/dev/null | awk -F': *' '/^Leap status/{print $2}') && [ -n \"$l\" ] && { [ \"$l\" = Normal ] && echo yes || echo no; exit 0; }",
  'echo unknown',
].join('\n');

export async function gatherProbe(host: Pick<Host, 'exec' | 'readFile' | 'name'>, dataPath: string): Promise<ProbeFacts> {
  const id = await host.exec(['id', '-u'], { mutates: false, allowFailure: true });
  if (id.exitCode !== 0) {
    // The last line says why (`sudo: a password is required`); sshd's chatter ("Could not chdir to home directory") comes first.
    const why = (id.stderr || id.stdout).trim().split('\n').at(-1)?.trim() || `exit ${id.exitCode}`;
    return { uid: undefined, privilegeError: why, os: undefined, facts: undefined, freeBytes: undefined, timeSync: 'unknown' };
  }
  const [osText, facts, free, sync] = await Promise.all([
    host.readFile('/etc/os-release'),
    readHostFacts({ host: host as Host }, dataPath).catch(() => undefined),
    freeBytes(host, dataPath),
    host.exec(['sh', '-c', TIME_SYNC_SCRIPT], { mutates: false, allowFailure: true }),
  ]);
  const t = sync.stdout.trim();
  return {
    uid: id.stdout.trim(),
    privilegeError: undefined,
    os: osText === undefined ? undefined : parseOsRelease(osText),
    facts,
    freeBytes: free,
    timeSync: t === 'yes' ? 'yes' : t === 'no' ? 'no' : 'unknown',
  };
}

/** The limits preflight applies in sprint 0, applied now (pure). */
export function judgeProbe(p: ProbeFacts, o: { name: string; user: string; dataPath: string }): ProbeVerdict {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (p.privilegeError !== undefined) {
    const noSudo = /not found|no such file/i.test(p.privilegeError);
    problems.push(
      o.user === 'root'
        ? `cannot run commands as root on ${o.name}: ${p.privilegeError}`
        : noSudo
          ? `sudo is not installed on ${o.name} (\`sudo -n id -u\` said: ${p.privilegeError}); dpgc needs root. Install sudo and allow ${o.user} passwordless sudo (a line \`${o.user} ALL=(ALL) NOPASSWD: ALL\` in /etc/sudoers.d/dpgc), or connect as root`
          : `${o.user} cannot use sudo without a password on ${o.name} (\`sudo -n id -u\` said: ${p.privilegeError}); dpgc needs root. Allow it: a line \`${o.user} ALL=(ALL) NOPASSWD: ALL\` in /etc/sudoers.d/dpgc, or connect as root`,
    );
    return { facts: p, problems, warnings };
  }
  if (p.uid !== '0') problems.push(`commands on ${o.name} run as uid ${p.uid}, not root: connect as root, or as a user with passwordless sudo`);
  const osProblem = p.os === undefined ? `no /etc/os-release on ${o.name}: cannot tell which OS it runs` : unsupportedOs(p.os);
  if (osProblem) problems.push(`${osProblem}; give a host that runs one`);
  if (p.facts === undefined) problems.push(`cannot read memory and CPUs on ${o.name} (/proc/meminfo, nproc): dpgc sizes PostgreSQL from them; is it a Linux host with /proc mounted?`);
  else if (p.facts.memoryBytes < MIN_MEMORY_BYTES) problems.push(`${o.name} has ${gib(p.facts.memoryBytes)} of memory; PostgreSQL with vector indexes needs at least ${gib(MIN_MEMORY_BYTES)}: give a larger host`);
  if (p.freeBytes === undefined) warnings.push(`could not measure free disk for ${o.dataPath}`);
  else if (p.freeBytes < MIN_FREE_BYTES) problems.push(`only ${gib(p.freeBytes)} free for ${o.dataPath} on ${o.name}; dpgc needs at least ${gib(MIN_FREE_BYTES)}: free some space or grow the volume`);
  else if (p.freeBytes < WARN_FREE_BYTES) warnings.push(`${gib(p.freeBytes)} free for ${o.dataPath}; ${gib(WARN_FREE_BYTES)} or more is advised for WAL and vector indexes`);
  if (p.timeSync === 'no') warnings.push(`the clock of ${o.name} is not synchronised (NTP): certificates, backups' target times and logs across hosts need one time; enable systemd-timesyncd or chrony`);
  if (p.timeSync === 'unknown') warnings.push(`could not tell whether the clock of ${o.name} is synchronised (neither timedatectl nor chronyc answered)`);
  return { facts: p, problems, warnings };
}

/** One line for the operator: what the host is. */
export function describeProbe(p: ProbeFacts, dataPath: string): string {
  const parts = [
    p.os ? p.os.prettyName : 'OS unknown',
    p.facts ? `${p.facts.cpus} CPU${p.facts.cpus === 1 ? '' : 's'}` : 'CPUs unknown',
    p.facts ? `${gib(p.facts.memoryBytes)} memory` : 'memory unknown',
    p.freeBytes === undefined ? `free disk unknown at ${dataPath}` : `${gib(p.freeBytes)} free at ${dataPath}`,
    `time sync ${p.timeSync}`,
    p.uid === '0' ? 'root: yes' : 'root: no',
  ];
  return parts.join(', ');
}
