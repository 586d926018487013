import type { Secrets } from '../config/secrets.js';
import { withClient, type Client, type Endpoint } from '../db/client.js';
import { observing } from '../db/observing.js';
import { HostError } from '../errors.js';
import { toChange, twoWay, type Outcome, type Step, type StepKind } from './step.js';

/**
 * A step that changes the catalog through SQL. Applied, `fn` runs on a real
 * connection; observed, the same `fn` runs on a connection that only lets
 * reads through, and the step lists the statements it would send.
 */
export function sqlStep(
  title: string,
  host: string | undefined,
  o: { secrets: Pick<Secrets, 'get'>; endpoint: () => Promise<Endpoint>; run: (c: Client) => Promise<Outcome> },
): Step {
  return twoWay('sql', title, host, {
    apply: async () => withClient(o.secrets, await o.endpoint(), o.run),
    observe: async () =>
      notYetReachable(async () =>
        withClient(o.secrets, await o.endpoint(), async (c) => {
          const obs = observing(c);
          const r = toChange(await o.run(obs.client));
          return r.changed ? { ...r, would: obs.statements } : r;
        }),
      ),
  });
}

/**
 * Under observation the steps before this one did not run: the server or
 * service it reads may not exist yet. That is a change still to come, not a
 * failure: the observation says so instead of failing the plan.
 */
export async function notYetReachable(fn: () => Promise<Outcome>): Promise<Outcome> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof HostError)) throw e;
    return { changed: true, note: `cannot be read yet, the steps before it come first: ${e.message.split('\n')[0]}` };
  }
}

/**
 * A host step (through the dry-run transport when observed) whose body also
 * reads a live service, such as PgBouncer's auth file built from pg_authid.
 */
export function readsLive(kind: Exclude<StepKind, 'sql' | 'rest'>, title: string, host: string | undefined, fn: () => Promise<Outcome>): Step {
  return twoWay(kind, title, host, { apply: fn, observe: () => notYetReachable(fn) });
}
