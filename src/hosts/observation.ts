import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * What a dry-run transport skipped, recorded for the step being observed, so
 * `dpgc plan --json` carries the same commands and file writes a human sees
 * on stderr. The plan observes steps one at a time and each step runs inside
 * its own record; outside one (a bare --dry-run command), nothing is kept.
 */
const current = new AsyncLocalStorage<string[]>();

export function recordingWould<T>(fn: () => Promise<T>): Promise<{ value: T; would: string[] }> {
  const would: string[] = [];
  return current.run(would, async () => ({ value: await fn(), would }));
}

/** Called by the transports for every change a dry run skips. */
export function noteWould(what: string): void {
  current.getStore()?.push(what);
}
