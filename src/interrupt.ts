import { InterruptedError } from './errors.js';

/**
 * Ctrl-C sets this; long work checks it between steps, so an interrupted run
 * stops at a step boundary (never halfway through writing a file) and a
 * re-run resumes, since every step is idempotent.
 */
export const interruption = new AbortController();

export function throwIfInterrupted(): void {
  if (interruption.signal.aborted) throw new InterruptedError('interrupted; every completed step is kept, and re-running resumes from here');
}

/**
 * What must be undone even when the operator aborts at once (a second
 * Ctrl-C, which exits without waiting for the step): a paused PgBouncer is
 * resumed, or its clients wait until query_wait_timeout and then fail.
 */
const held = new Map<symbol, { what: string; undo: () => Promise<void>; settled: Promise<unknown> }>();

/**
 * Runs `fn`, then `undo` whatever happens. An abort at once (src/cli/main.ts)
 * first gives `fn` a few seconds to finish (the held section is short, and
 * finishing it leaves a consistent state), then runs `undo` before exiting.
 */
export async function holding<T>(what: string, undo: () => Promise<void>, fn: () => Promise<T>): Promise<T> {
  const key = Symbol(what);
  let release = (): void => {};
  held.set(key, { what, undo, settled: new Promise<void>((r) => (release = r)) });
  try {
    return await fn();
  } finally {
    try {
      await undo();
    } finally {
      held.delete(key);
      release();
    }
  }
}

/** Lets held sections finish (their undo included) within `timeoutMs`, then undoes those still held; the names of what was held. */
export async function undoHeld(timeoutMs: number): Promise<string[]> {
  const all = [...held.entries()];
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
  await Promise.race([Promise.allSettled(all.map(([, h]) => h.settled)), wait(timeoutMs)]);
  await Promise.race([Promise.allSettled(all.filter(([k]) => held.has(k)).map(([, h]) => h.undo())), wait(3000)]);
  return all.map(([, h]) => h.what);
}
