import type { Host } from './types.js';

/**
 * The lab's stand-in for systemd's `Restart=always`: a small POSIX sh loop
 * that runs the daemon as its child and starts it again a second after it
 * exits, until the loop itself is told to stop (SIGTERM/SIGINT, which it
 * forwards and waits out; SIGHUP is forwarded as a reload). Its pid is the
 * one the pid file records, so `stop` ends the loop and the daemon together.
 *
 * Why: with Patroni's ttl at 20 s a lost leader costs 20 s, but most lost
 * leaders are a crashed Patroni or postmaster on a live host. Restarted at
 * once, Patroni finds its own leader key still valid and resumes as leader
 * ("promoted self to leader because I had the session lock"): no failover.
 * A host death (SIGKILL of the loop too) still costs a failover.
 *
 * The daemon's argv reaches the loop as positional parameters ("$@"), never
 * spliced into the script text, so no value is ever parsed by the shell.
 */
export const SUPERVISOR_NAME = 'dpgc-supervise';
export const RESTART_DELAY_S = 1;

const SCRIPT = [
  'child=',
  'stop() { trap - TERM INT; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; exit 0; }',
  'trap stop TERM INT',
  'trap \'[ -n "$child" ] && kill -HUP "$child" 2>/dev/null\' HUP',
  'while :; do',
  '  "$@" & child=$!',
  // wait returns early when a trapped signal arrives; keep waiting until the child itself has gone.
  '  while kill -0 "$child" 2>/dev/null; do wait "$child"; st=$?; done',
  `  echo "${SUPERVISOR_NAME}: $1 exited (status $st); starting it again in ${RESTART_DELAY_S}s" >&2`,
  '  child=',
  `  sleep ${RESTART_DELAY_S}`,
  'done',
].join('\n');

/** argv that runs `argv` under the restart loop. */
export function superviseArgv(argv: readonly string[]): string[] {
  return ['sh', '-c', SCRIPT, SUPERVISOR_NAME, ...argv];
}

/**
 * The daemon's pid when `pid` is a restart loop (its current child), else
 * undefined: a fault drill must be able to kill the daemon and not the loop
 * (a crash), or both (a host death).
 */
export async function supervisedChild(host: Host, pid: number): Promise<number | undefined> {
  const cmd = await host.readFile(`/proc/${pid}/cmdline`);
  if (!cmd?.split('\0').includes(SUPERVISOR_NAME)) return undefined;
  const r = await host.exec(['ps', '-o', 'pid=,comm=', '--ppid', String(pid)], { mutates: false, allowFailure: true });
  const child = r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find(([p, comm]) => p && comm !== 'sleep');
  return child ? Number(child[0]) : undefined;
}
