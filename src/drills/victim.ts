import type { RunContext } from '../context.js';
import { HostError } from '../errors.js';
import { clientUrl, endpointAddress, endpointStatus, etcdctlNode, etcdHosts, liveClientEndpoints } from '../components/etcd.js';
import type { Health, Snapshot } from './health.js';
import type { DrillMode } from './types.js';

/**
 * Who the fault hits: the leader for failovers, the synchronous standby for
 * `replica` (the one whose loss can block commits), the etcd raft leader for
 * `etcd-member` (the member whose loss forces an election).
 */
export async function pickVictim(ctx: Pick<RunContext, 'inventory' | 'pool'>, mode: DrillMode, pre: Snapshot, health: Health): Promise<string> {
  if (mode === 'replica') {
    const sync = health.syncStandbys[0];
    if (!sync) throw new HostError('no synchronous standby to kill');
    return sync;
  }
  if (mode === 'etcd-member') {
    const inv = ctx.inventory;
    const status = await endpointStatus(await etcdctlNode(ctx.pool), await liveClientEndpoints(inv));
    const leaderRow = status.find((s) => s.memberId === s.leaderId);
    const host = leaderRow ? etcdHosts(inv).find((h) => endpointAddress(clientUrl(inv, h)) === endpointAddress(leaderRow.endpoint)) : undefined;
    if (host) return host.name;
    const fallback = etcdHosts(inv)[0];
    if (!fallback) throw new HostError(`${inv.file}: no host has the etcd role`);
    return fallback.name;
  }
  return pre.leader!;
}
