import type { Inventory } from '../config/schema.js';
import { HostError } from '../errors.js';
import type { HostPool } from '../hosts/pool.js';
import { anyAccepts } from '../lock-etcd.js';
import { patroniView } from './patroni.js';
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
