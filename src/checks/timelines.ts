import { currentLeader } from '../components/cluster.js';
import { superuserOn } from '../components/endpoints.js';
import { rest, restTarget } from '../components/patroni.js';
import { withClient } from '../db/client.js';
import { waitUntil } from '../wait.js';
import { fail, pass, type Check } from './types.js';

/**
 * Lost writes leave evidence. When a leader is promoted, PostgreSQL writes a
 * timeline history file (`0000000N.history`: for each earlier timeline, the
 * LSN where it ended), Patroni copies the new leader's history into etcd, and
 * every member that follows gets the same file. In a cluster that never lost
 * a write these all agree. When a promoted timeline is abandoned (a stalled
 * old leader that took its key back, as patroni/patroni#2689 did; a replica
 * promoted by hand; an asynchronous failover that was undone), the same
 * timeline number ends up with two different branch points, or a member holds
 * a timeline the leader never had: Patroni's REST API still says `streaming`,
 * lag 0, while the replicas hold writes the leader does not. Reproduced on
 * Patroni 4.0.7 by freezing the leader and writing its key back: the woken
 * leader promoted itself to a second "timeline 3" and both replicas streamed
 * from it.
 */

/** One line of a history file or of Patroni's DCS history: timeline `tli` ended at `lsn`. */
export interface Switch {
  tli: number;
  lsn: string;
  /** DCS history only: when, and which member was promoted onto tli + 1. */
  at?: string;
  promoted?: string;
}

export interface MemberHistory {
  name: string;
  timeline: number;
  /** Every history file in the member's pg_wal, by the timeline it creates. */
  files: Map<number, Switch[]>;
}

/** `2\t0/A3A2F80\tno recovery target specified` lines; blank and comment lines skipped. */
export function parseHistoryFile(text: string): Switch[] {
  const out: Switch[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m) out.push({ tli: Number(m[1]), lsn: normLsn(m[2]!) });
  }
  return out;
}

/** Patroni's GET /history: `[[tli, lsn as a number, reason, timestamp, new leader], …]`. */
export function parseDcsHistory(body: unknown): Switch[] {
  if (!Array.isArray(body)) return [];
  return body.flatMap((row) => {
    if (!Array.isArray(row) || typeof row[0] !== 'number' || typeof row[1] !== 'number') return [];
    return [{ tli: row[0], lsn: lsnFromNumber(row[1]), ...(typeof row[3] === 'string' ? { at: row[3] } : {}), ...(typeof row[4] === 'string' ? { promoted: row[4] } : {}) }];
  });
}

export function lsnFromNumber(n: number): string {
  const hi = Math.floor(n / 2 ** 32);
  const lo = n - hi * 2 ** 32;
  return `${hi.toString(16)}/${lo.toString(16)}`.toUpperCase();
}

function normLsn(lsn: string): string {
  const [hi, lo] = lsn.split('/');
  return `${Number.parseInt(hi!, 16).toString(16)}/${Number.parseInt(lo!, 16).toString(16)}`.toUpperCase();
}

/**
 * Pure: every way the members' histories and etcd's disagree with the
 * leader's own lineage, in words an operator can act on.
 */
export function assessTimelines(leader: MemberHistory, others: MemberHistory[], dcs: Switch[]): string[] {
  const problems: string[] = [];
  const lineage = new Map((leader.timeline > 1 ? (leader.files.get(leader.timeline) ?? []) : []).map((s) => [s.tli, s.lsn]));
  if (leader.timeline > 1 && !leader.files.has(leader.timeline)) {
    return [`${leader.name} leads on timeline ${leader.timeline} but has no history file for it: its lineage cannot be checked`];
  }
  // One line per abandoned timeline, from etcd's record where it still has one (Patroni 4 rewrites that
  // record from the leader's own history file, so after a while only the members' files tell).
  const abandoned = new Map<number, string>();
  const abandon = (tli: number, text: string) => abandoned.has(tli) || abandoned.set(tli, text);
  const branchText = (parent: number, lsn: string, mine: string | undefined) =>
    `it branched from timeline ${parent} at LSN ${lsn}, ${mine !== undefined ? `the leader ${leader.name}'s at ${mine}` : `and the leader ${leader.name} is on timeline ${leader.timeline}`}; writes acknowledged on it after LSN ${lsn} may be lost`;
  for (const d of dcs) {
    const mine = lineage.get(d.tli);
    const who = `timeline ${d.tli + 1}${d.promoted ? ` (promoted on ${d.promoted}${d.at ? ` at ${d.at}` : ''})` : ''}`;
    if (d.tli >= leader.timeline || (mine !== undefined && mine !== d.lsn)) abandon(d.tli + 1, `${who} was abandoned: ${branchText(d.tli, d.lsn, d.tli >= leader.timeline ? undefined : mine)}`);
  }
  const diverged: string[] = [];
  for (const m of others) {
    const why: string[] = [];
    if (m.timeline > leader.timeline) why.push(`it is on timeline ${m.timeline}, newer than the leader's ${leader.timeline}`);
    for (const [tli, lines] of m.files) {
      if (tli > leader.timeline) {
        why.push(`it holds timeline ${tli}, which the leader never had`);
        const branch = lines.find((s) => s.tli === tli - 1);
        if (branch) abandon(tli, `timeline ${tli} was abandoned: ${branchText(branch.tli, branch.lsn, undefined)}`);
        continue;
      }
      for (const s of lines) {
        const mine = lineage.get(s.tli);
        if (mine !== undefined && mine !== s.lsn) {
          why.push(`its timeline ${s.tli + 1} branched from timeline ${s.tli} at LSN ${s.lsn}, the leader's at ${mine}`);
          abandon(s.tli + 1, `timeline ${s.tli + 1} was abandoned: ${branchText(s.tli, s.lsn, mine)}`);
        }
      }
    }
    if (why.length) diverged.push(`${m.name} has diverged from the leader ${leader.name}: ${[...new Set(why)].join('; ')}`);
  }
  problems.push(...[...abandoned].sort(([a], [b]) => a - b).map(([, t]) => t), ...diverged);
  return problems;
}

/** How long a member listed without a timeline (Patroni just started) is waited for. */
const TIMELINE_GRACE_MS = 15_000;

const HISTORY_SQL = String.raw`SELECT name, pg_read_file('pg_wal/' || name) AS content FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{8}\.history$'`;

export function timelineHistoryCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'Every member’s timeline history agrees with the leader’s: no abandoned timeline, no diverged member',
    sprint,
    kind: 'read',
    async run(ctx) {
      const inv = ctx.inventory;
      const leaderHost = await currentLeader(inv);
      const t = restTarget(inv, leaderHost);
      // A member whose Patroni has just (re)started is listed before it reports a timeline (one or two
      // of its loops): give it that long rather than fail a healthy cluster that a sprint just touched.
      type Listed = { name: string; state?: string; timeline?: number };
      const listed = async () => (await rest<{ members?: Listed[] }>(t, 'GET', '/cluster')).body.members ?? [];
      const members = await waitUntil(
        async (seen) => {
          const ms = await listed();
          seen(ms);
          return ms.every((m) => m.timeline !== undefined) ? ms : undefined;
        },
        { timeoutMs: TIMELINE_GRACE_MS, everyMs: 500, timeoutError: () => new Error('unreachable') },
        'every member reports a timeline',
      ).catch(() => listed());
      const history = await rest<unknown>(t, 'GET', '/history');
      const read = async (name: string): Promise<MemberHistory | string> => {
        const h = inv.hosts.find((x) => x.name === name);
        const timeline = members.find((m) => m.name === name)?.timeline;
        if (!h || timeline === undefined) return `${name}: no timeline reported by Patroni (state ${members.find((m) => m.name === name)?.state ?? 'unknown'}) after ${TIMELINE_GRACE_MS / 1000}s`;
        try {
          const rows = await withClient(ctx.secrets, superuserOn(inv, h), async (c) => (await c.query<{ name: string; content: string }>(HISTORY_SQL)).rows);
          return { name, timeline, files: new Map(rows.map((r) => [Number.parseInt(r.name.slice(0, 8), 16), parseHistoryFile(r.content)])) };
        } catch (e) {
          return `${name}: ${(e as Error).message.split('\n')[0]}`;
        }
      };
      const all = await Promise.all(members.map((m) => read(m.name)));
      const unread = all.filter((x): x is string => typeof x === 'string');
      const got = all.filter((x): x is MemberHistory => typeof x !== 'string');
      const leader = got.find((m) => m.name === leaderHost.name);
      if (!leader) return fail(`the leader's history could not be read: ${unread.join('; ')}`, { remedy: 'Run `dpgc status`; the leader must accept a superuser connection from this machine.' });
      const problems = assessTimelines(leader, got.filter((m) => m !== leader), parseDcsHistory(history.body));
      const value = `leader ${leader.name} on timeline ${leader.timeline}, ${got.length} members read`;
      if (problems.length) {
        return fail(problems.join('\n'), {
          value,
          threshold: 'one lineage',
          remedy:
            'Writes were acknowledged on a timeline the cluster left behind. Before repairing, copy what you need from the diverged members (their data directories hold those writes). ' +
            `Then re-clone each diverged member (\`patronictl reinit ${inv.cluster} <member>\`) and make one switchover (\`dpgc failover-test --mode switchover\`), so that Patroni rewrites its history in etcd from a clean leader.`,
        });
      }
      if (unread.length) return fail(`could not read: ${unread.join('; ')}`, { value, remedy: 'Run `dpgc status` and repair the members named.' });
      return pass(value, 'one lineage');
    },
  };
}
