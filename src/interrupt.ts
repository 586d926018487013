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
