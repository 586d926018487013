import type { Inventory } from '../config/schema.js';
import type { MemberView, ReplicationView, Snapshot } from './health.js';
import { patroniView, rest, restTarget, type PatroniMemberStatus, type PatroniView } from '../components/patroni.js';

/**
 * The drill's eyes: Patroni's own view (GET /cluster, the leader's
 * GET /patroni, GET /history), through the REST client of the Patroni
 * component. During a drill one member may hang (freeze) or be cut off
 * (partition), so every member is asked at once with a short timeout and
 * the victim's answer is used only when nobody else answers: a frozen or
 * isolated leader's view is stale by construction.
 */
type Inv = Pick<Inventory, 'hosts' | 'ports'>;
const POLL_TIMEOUT_MS = 1500;

export async function snapshot(inv: Inv, opts: { distrust?: string; timeoutMs?: number } = {}): Promise<Snapshot> {
  const at = Date.now();
  const timeoutMs = opts.timeoutMs ?? POLL_TIMEOUT_MS;
  // A hung victim must not slow every poll down to its timeout: patroniView takes the first trustworthy answer.
  let pick: PatroniView;
  try {
    pick = await patroniView(inv, { ...opts, timeoutMs });
  } catch (e) {
    return { at, from: undefined, members: [], leader: undefined, replication: undefined, error: (e as Error).message.split('\n').slice(1).map((l) => l.trim()).join('; ') };
  }
  const members: MemberView[] = pick.members.map((m) => ({ name: m.name, role: m.role, state: m.state, lag: m.lag, timeline: m.timeline }));
  const leader = pick.leader?.name;
  let replication: ReplicationView[] | undefined;
  const leaderHost = leader ? inv.hosts.find((h) => h.name === leader) : undefined;
  // Asking a victim that still holds the leader key would only time out.
  if (leaderHost && leader !== opts.distrust) {
    try {
      const r = await rest<PatroniMemberStatus>(restTarget(inv, leaderHost), 'GET', '/patroni', { timeoutMs });
      if (r.status === 200 || r.status === 503) replication = (r.body.replication ?? []).map((x) => ({ application_name: x.application_name, state: x.state, sync_state: x.sync_state }));
    } catch {
      // the leader's REST API did not answer: replication stays unknown
    }
  }
  return { at, from: pick.from, members, leader, replication };
}

/** When Patroni promoted `leader` to its current timeline (GET /history: [timeline, lsn, reason, timestamp, new_leader]). */
export async function promotionTime(inv: Inv, leader: string, notBefore: number): Promise<number | null> {
  const h = inv.hosts.find((x) => x.name === leader);
  if (!h) return null;
  try {
    const r = await rest<unknown[]>(restTarget(inv, h), 'GET', '/history', { timeoutMs: 3000 });
    if (r.status !== 200 || !Array.isArray(r.body)) return null;
    const times = r.body
      .map((e) => (Array.isArray(e) && typeof e[3] === 'string' ? Date.parse(e[3]) : NaN))
      .filter((t) => Number.isFinite(t) && t >= notBefore - 1000);
    return times.length ? Math.min(...times) : null;
  } catch {
    return null;
  }
}
