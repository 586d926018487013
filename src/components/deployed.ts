import type { Inventory } from '../config/schema.js';
import { HostError } from '../errors.js';
import type { HostPool } from '../hosts/pool.js';
import { anyAccepts } from '../lock-etcd.js';
import { patroniView, rest, restTarget } from './patroni.js';
import type { Credentials } from '../db/client.js';
import { dcsInitializeKey } from './takeover.js';

/**
 * How far the live cluster has come, read from the inventory and the hosts,
 * never from the state file (a record of runs: a corrupt or missing one must
 * not re-point PgBouncer at one node or drop scrape targets). Routing
 * (`pgbouncerTargets`) and Prometheus's targets (`monitoredSprint`) decide
 * from this.
 */
export interface Deployed {
  /** An etcd member accepts connections (sprint 2's DCS exists). */
  etcd: boolean;
  /** Patroni initialised the cluster: its initialize key is in etcd (sprint 3's takeover happened). */
  patroni: boolean;
}

/** The sprint whose topology the live cluster has: 3 once Patroni runs it, 2 once etcd does, else 0. */
export function deployedSprint(d: Deployed): number {
  return d.patroni ? 3 : d.etcd ? 2 : 0;
}

type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports'>;

export async function observeDeployed(inv: Inv, pool: HostPool): Promise<Deployed> {
  const etcd = inv.hosts.filter((h) => h.roles.includes('etcd'));
  // Before sprint 2 nothing listens: a TCP probe says so in a millisecond.
  if (!etcd.length || !(await anyAccepts(etcd.map((h) => ({ host: h.address, port: inv.ports.etcd_client }))))) return { etcd: false, patroni: false };
  try {
    return { etcd: true, patroni: (await dcsInitializeKey(inv, pool)) !== undefined };
  } catch (e) {
    // etcd listens but does not answer: Patroni, if it runs the cluster, still says so.
    const patroni = await patroniView(inv).then(
      (v) => v.members.length > 0,
      () => undefined,
    );
    if (patroni !== undefined) return { etcd: true, patroni };
    throw new HostError(`cannot tell whether Patroni runs ${inv.cluster}: etcd accepts connections but does not answer (${(e as Error).message.split('\n')[0]}), and no Patroni member answers`, {
      hint: 'Run `dpgc status` to see which daemons are down; dpgc will not guess where applications should connect.',
    });
  }
}

export async function liveSprint(ctx: { inventory: Inv; pool: HostPool }): Promise<number> {
  return deployedSprint(await observeDeployed(ctx.inventory, ctx.pool));
}

/**
 * `tlsCa`: the sprint that turns TLS on (5) says so itself, so its plan shows
 * the clients it will move to TLS, before the live cluster serves it.
 */
export interface ClientTlsChoice {
  tlsCa?: string;
}

/**
 * The cluster CA's certificate when the cluster's PostgreSQL serves TLS
 * (sprint 5 put `ssl = on` into Patroni's dynamic configuration, one for
 * every member), else undefined. Then every client dpgc configures inside
 * the cluster (PgBouncer's server side, postgres_exporter) connects with TLS,
 * verify-full against it, whichever sprint renders that client. Asked of the
 * live cluster: a Patroni that runs the cluster but does not answer is an
 * error, never a reason to render a client without TLS.
 */
export async function clientTls(ctx: { inventory: Inv; pool: HostPool; secrets: Credentials }): Promise<string | undefined> {
  const inv = ctx.inventory;
  if (!(await observeDeployed(inv, ctx.pool)).patroni) return undefined;
  const members = inv.hosts.filter((h) => h.roles.includes('postgres'));
  const config = await Promise.any(
    members.map(async (h) => {
      const r = await rest<{ postgresql?: { parameters?: Record<string, unknown> } }>(restTarget(inv, h), 'GET', '/config', { timeoutMs: 5000 });
      if (r.status !== 200) throw new Error(`${h.name}: HTTP ${r.status}`);
      return r.body;
    }),
  ).catch(() => {
    throw new HostError(`cannot tell whether ${inv.cluster}'s PostgreSQL serves TLS: no Patroni member answers GET /config`, {
      hint: 'Run `dpgc status` to see which daemons are down; dpgc will not configure a client without TLS on a guess.',
    });
  });
  const ssl = config?.postgresql?.parameters?.['ssl'];
  if (ssl !== 'on' && ssl !== true) return undefined;
  const ca = await ctx.secrets.clusterCa?.();
  if (ca === undefined) {
    throw new HostError(`${inv.cluster}'s PostgreSQL serves TLS, but this machine has no cluster CA certificate to verify it with`, {
      hint: 'Restore the CA directory beside the inventory (`<inventory>.ca/`) from the machine that set the cluster up.',
    });
  }
  return ca;
}

/**
 * Whether the members' own configuration requires TLS (components/patroni.ts
 * PatroniTls): exactly when the cluster serves it, so the sprint that renders
 * Patroni's file (2, 4 or 5) never takes it back to plaintext.
 */
export async function tlsRequired(ctx: { inventory: Inv; pool: HostPool; secrets: Credentials }, o: ClientTlsChoice = {}): Promise<{ requireTls: boolean }> {
  return { requireTls: (o.tlsCa ?? (await clientTls(ctx))) !== undefined };
}
