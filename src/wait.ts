import { HostError } from './errors.js';

/**
 * The one way dpgc waits for something on a live cluster: look, and if it is
 * not there yet, pause and look again until a deadline. The condition
 * returns the awaited value, or `undefined` (or `false`) for "not yet"; what
 * it saw on the way is reported with `seen(...)` so a timeout can say what
 * the world looked like last, not only that time ran out.
 */
export interface Deadline {
  timeoutMs: number;
  /** Pause between two looks. */
  everyMs: number;
  /** An error thrown by the condition counts as "not yet" (and as the last observation) instead of ending the wait. */
  retryErrors?: boolean;
  /** The error to throw on timeout instead of WaitTimeout itself (each caller keeps its own message and hint). */
  timeoutError?: (t: WaitTimeout) => Error | Promise<Error>;
}

/** Time ran out: what was awaited, for how long, and the last thing the condition saw (a value or an error). */
export class WaitTimeout extends HostError {
  constructor(
    readonly waitedFor: string,
    readonly timeoutMs: number,
    readonly last: unknown,
  ) {
    super(`${waitedFor} did not happen within ${timeoutMs / 1000}s${describeLast(last)}`);
  }

  /** The last observation as text: an error's message, a string as is, anything else as JSON. */
  get lastSeen(): string | undefined {
    return describeLast(this.last).replace(/^: /, '') || undefined;
  }
}

function describeLast(last: unknown): string {
  if (last === undefined || last === null || last === '') return '';
  if (last instanceof Error) return `: ${last.message}`;
  return `: ${typeof last === 'string' ? last : JSON.stringify(last)}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Look until `condition` yields a value or the deadline passes. Looks at least
 * once; after the deadline throws `WaitTimeout` naming `describe` and the last
 * observation (or the caller's own error, from `deadline.timeoutError`).
 */
export async function waitUntil<T>(
  condition: (seen: (observation: unknown) => void) => Promise<T | undefined | false> | T | undefined | false,
  deadline: Deadline,
  describe: string,
): Promise<T> {
  const until = Date.now() + deadline.timeoutMs;
  let last: unknown;
  const seen = (o: unknown) => {
    last = o;
  };
  for (;;) {
    try {
      const v = await condition(seen);
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      if (!deadline.retryErrors) throw e;
      last = e;
    }
    if (Date.now() > until) {
      const t = new WaitTimeout(describe, deadline.timeoutMs, last);
      throw deadline.timeoutError ? await deadline.timeoutError(t) : t;
    }
    await sleep(deadline.everyMs);
  }
}

/** `waitUntil` for callers that only need to know whether it happened in time. */
export async function becomes(condition: () => Promise<boolean> | boolean, deadline: Pick<Deadline, 'timeoutMs' | 'everyMs'>, describe: string): Promise<boolean> {
  try {
    return await waitUntil(async () => (await condition()) || undefined, deadline, describe);
  } catch (e) {
    if (e instanceof WaitTimeout) return false;
    throw e;
  }
}
