import { closeSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { LockedError } from './errors.js';
import type { Logger } from './output/log.js';

/**
 * One run at a time per cluster: every command that changes hosts holds
 * `<inventory>.lock` on the machine dpgc runs on. Two runs racing on the same
 * daemons left pid files pointing at dead processes and untracked daemons
 * holding the ports (issue 10, finding 3).
 *
 * The lock file is written whole under a private name, then hard-linked to
 * its public name: link(2) fails with EEXIST like open(O_EXCL), and a reader
 * never sees a half-written holder. A lock whose process is gone (or whose
 * pid now belongs to another process, told apart by its start time in
 * /proc/<pid>/stat) is stale and taken over, with a message.
 */
export interface LockHolder {
  host: string;
  pid: number;
  command: string;
  /** ISO time the lock was taken. */
  since: string;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot); null off Linux. */
  startTime: string | null;
}

export interface RunLock {
  file: string;
  holder: LockHolder;
  release(): void;
}

export function lockPathFor(inventoryFile: string): string {
  return `${inventoryFile}.lock`;
}

/** Locks this process holds, by file, with how many nested holders (`lab up` runs `up`). */
const held = new Map<string, { lock: RunLock; depth: number }>();

export async function withRunLock<T>(inventoryFile: string, command: string, logger: Logger, fn: () => Promise<T>): Promise<T> {
  const lock = acquireRunLock(inventoryFile, command, logger);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

export function acquireRunLock(inventoryFile: string, command: string, logger: Logger): RunLock {
  const file = lockPathFor(inventoryFile);
  const mine = held.get(file);
  if (mine) {
    mine.depth++;
    return { ...mine.lock, release: () => releaseNested(file) };
  }
  const holder = thisRun(command);
  const text = `${JSON.stringify(holder)}\n`;
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(file, text)) break;
    const current = readHolder(file);
    if (current === 'gone') continue;
    const stale = current === 'unreadable' ? undefined : staleReason(current);
    if (current === 'unreadable' || !stale || attempt > 5) throw heldError(file, current);
    if (takeOver(file, current)) logger.warn(`Took over a stale lock ${file} (${describeHolder(current)}): ${stale}.`);
  }
  const lock: RunLock = { file, holder, release: () => releaseNested(file) };
  held.set(file, { lock, depth: 1 });
  // A second Ctrl-C ends the process at once (process.exit): finally blocks do not run, 'exit' handlers do.
  if (held.size === 1) process.on('exit', onExit);
  return lock;
}

/** Who this process is, as a lock records it. */
export function thisRun(command: string): LockHolder {
  return { host: hostname(), pid: process.pid, command, since: new Date().toISOString(), startTime: processStartTime(process.pid) };
}

function releaseNested(file: string): void {
  const h = held.get(file);
  if (!h) return;
  if (--h.depth > 0) return;
  held.delete(file);
  removeIfMine(file, h.lock.holder);
  if (held.size === 0) process.off('exit', onExit);
}

function onExit(): void {
  for (const [file, h] of held) removeIfMine(file, h.lock.holder);
  held.clear();
}

function removeIfMine(file: string, me: LockHolder): void {
  const cur = readHolder(file);
  if (typeof cur === 'object' && cur.pid === me.pid && cur.since === me.since && cur.host === me.host) {
    try {
      unlinkSync(file);
    } catch {
      // Already gone.
    }
  }
}

function tryCreate(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

function readHolder(file: string): LockHolder | 'gone' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'unreadable';
  }
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.since === 'string' && typeof h.command === 'string') {
      return { host: h.host, pid: h.pid, command: h.command, since: h.since, startTime: typeof h.startTime === 'string' ? h.startTime : null };
    }
  } catch {
    // Not JSON: not written by dpgc.
  }
  return 'unreadable';
}

/** Why the holder cannot be running any more, or undefined when it may be. */
export function staleReason(h: LockHolder, myHost = hostname()): string | undefined {
  // A process on another machine (an inventory on a shared disk) cannot be checked from here.
  if (h.host !== myHost) return undefined;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return `pid ${h.pid} is not running`;
  }
  const now = processStartTime(h.pid);
  if (h.startTime && now && now !== h.startTime) return `pid ${h.pid} now belongs to another process (started at another time)`;
  return undefined;
}

/**
 * Moves the stale lock aside under a private name and checks it is still the
 * stale one: had another run taken over first and written its own, that live
 * lock is put back (link fails if a third run holds the name) and we retry.
 */
function takeOver(file: string, stale: LockHolder): boolean {
  const aside = `${file}.stale.${process.pid}`;
  try {
    renameSync(file, aside);
  } catch {
    return false;
  }
  const moved = readHolder(aside);
  const same = typeof moved === 'object' && moved.pid === stale.pid && moved.since === stale.since && moved.host === stale.host;
  if (!same) {
    try {
      linkSync(aside, file);
    } catch {
      // Someone holds the name again; they will be seen on the next attempt.
    }
  }
  unlinkSync(aside);
  return same;
}

function heldError(file: string, h: LockHolder | 'unreadable'): LockedError {
  if (h === 'unreadable') {
    return new LockedError(`another dpgc run may hold ${file}, whose content is not a dpgc lock`, { hint: `Look at it; remove it once you are sure no dpgc run is working on this cluster.` });
  }
  const remote = h.host !== hostname();
  return new LockedError(`another dpgc run is changing this cluster: ${describeHolder(h)}`, {
    hint: `Wait for it to finish, then run again.${remote ? ` It runs on ${h.host}, so dpgc cannot tell from here whether it is still alive; if it is not,` : ' If that process is stuck,'} remove ${file} once you are sure it is gone.`,
  });
}

export function describeHolder(h: LockHolder): string {
  const ago = Math.max(0, Math.round((Date.now() - Date.parse(h.since)) / 1000));
  return `pid ${h.pid} on ${h.host}, running \`${h.command}\`, since ${h.since} (${ago < 120 ? `${ago} s` : `${Math.round(ago / 60)} min`} ago)`;
}

/** Field 22 of /proc/<pid>/stat: when the process started, which tells a reused pid from the original. */
export function processStartTime(pid: number): string | null {
  try {
    // The command name (field 2) may hold spaces and parentheses; fields after the last ") " are plain.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
