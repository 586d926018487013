import type { MemberView } from '../components/cluster.js';
import { isLeaderRole } from '../components/patroni.js';

/**
 * "Healthy enough to drill": one leader, every other member streaming from
 * it, a synchronous standby. Pure, over a snapshot the engine takes from
 * Patroni (the cluster view and the leader's replication list), so the rule
 * is unit-tested and the refusal message says exactly what is wrong.
 */
// One member type for status, checks and drills (src/components/cluster.ts).
export type { MemberView };

export interface ReplicationView {
  application_name: string;
  state: string;
  sync_state: string;
}

export interface Snapshot {
  at: number;
  /** Member that answered GET /cluster; undefined when none did. */
  from: string | undefined;
  members: MemberView[];
  leader: string | undefined;
  /** The leader's GET /patroni replication list; undefined when the leader did not answer. */
  replication: ReplicationView[] | undefined;
  error?: string;
}

export interface Health {
  healthy: boolean;
  problems: string[];
  syncStandbys: string[];
}


export function assessHealth(s: Snapshot, expected: readonly string[]): Health {
  const problems: string[] = [];
  if (s.from === undefined) return { healthy: false, problems: [`no Patroni member answers${s.error ? `: ${s.error}` : ''}`], syncStandbys: [] };
  const leaders = s.members.filter((m) => isLeaderRole(m.role));
  if (leaders.length === 0) problems.push('the cluster has no leader');
  if (leaders.length > 1) problems.push(`more than one leader: ${leaders.map((m) => m.name).join(', ')}`);
  const leader = leaders[0];
  if (leader && leader.state !== 'running') problems.push(`leader ${leader.name} is ${leader.state}, not running`);
  for (const name of expected) {
    if (!s.members.some((m) => m.name === name)) problems.push(`${name} is not a member of the cluster (Patroni not running there?)`);
  }
  const repl = s.replication ?? [];
  if (leader && s.replication === undefined) problems.push(`leader ${leader.name} did not report its replication`);
  for (const m of s.members) {
    if (leader && m.name === leader.name) continue;
    const r = repl.find((x) => x.application_name === m.name);
    // Patroni may still call such a member running: one ahead of the leader's timeline can never stream from it.
    if (leader?.timeline !== undefined && m.timeline !== undefined && m.timeline > leader.timeline) {
      problems.push(`${m.name} is on timeline ${m.timeline}, ahead of the leader ${leader.name}'s ${leader.timeline}: it has diverged and needs a re-clone`);
    } else if (!r) problems.push(`${m.name} is not replicating from ${leader?.name ?? 'a leader'} (member state: ${m.state})`);
    else if (r.state !== 'streaming') problems.push(`${m.name} replication is ${r.state}, not streaming`);
  }
  const syncStandbys = repl.filter((r) => r.state === 'streaming' && (r.sync_state === 'sync' || r.sync_state === 'quorum')).map((r) => r.application_name);
  if (leader && s.replication !== undefined && syncStandbys.length === 0) problems.push('no synchronous standby: acknowledged writes are not yet protected by a second copy');
  return { healthy: problems.length === 0, problems, syncStandbys };
}

/** "leader db2, streaming: db1 (sync), db3 (async)". */
export function describeSnapshot(s: Snapshot): string {
  if (s.from === undefined) return 'no member answers';
  const repl = (s.replication ?? []).map((r) => `${r.application_name} (${r.state}/${r.sync_state})`).join(', ');
  return `leader ${s.leader ?? 'none'}${repl ? `, replicas: ${repl}` : ''}`;
}
