import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { connect, withClient } from '../db/client.js';
import { DATABASES, superuserOn } from '../components/endpoints.js';
import { checkRows } from './analysis.js';
import { abandon, DRILL_TABLE } from './load.js';
import type { Ack, InDoubt, NodeRows, RowCount } from './types.js';
import { waitUntil } from '../wait.js';

/**
 * Reads the drill's rows back from every PostgreSQL node directly (not
 * through HAProxy): the new primary, and each replica once it has replayed
 * everything the primary had written when the load stopped.
 */
type Inv = Pick<Inventory, 'hosts' | 'ports'>;

export interface ReadbackResult {
  nodes: NodeRows[];
  /** Nodes that could not be checked, with the reason. */
  unchecked: { node: string; reason: string }[];
}

async function rowsOn(inv: Inv, secrets: Pick<Secrets, 'get'>, h: HostSpec, run: string): Promise<RowCount[]> {
  return withClient(secrets, superuserOn(inv, h, DATABASES.project.name), async (c) => {
    const r = await c.query<{ writer: number; seq: string; count: number }>(`SELECT writer, seq, count(*)::int AS count FROM ${DRILL_TABLE} WHERE run = $1 GROUP BY writer, seq`, [run]);
    return r.rows.map((x) => ({ writer: x.writer, seq: Number(x.seq), count: x.count }));
  });
}

async function waitReplayed(inv: Inv, secrets: Pick<Secrets, 'get'>, h: HostSpec, lsn: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  await withClient(secrets, superuserOn(inv, h), async (c) =>
    waitUntil(
      async () => (await c.query<{ caught_up: boolean | null }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up', [lsn])).rows[0]?.caught_up === true,
      // The clock started before the connection, as the time allowed is for the whole catch-up.
      { timeoutMs: Math.max(0, started + timeoutMs - Date.now()), everyMs: 200, timeoutError: () => new Error(`had not replayed up to ${lsn} after ${timeoutMs / 1000}s`) },
      `${h.name} replaying up to ${lsn}`,
    ),
  );
}

export async function readBack(inv: Inv, secrets: Pick<Secrets, 'get'>, o: { run: string; leader: string; acks: readonly Ack[]; inDoubt: readonly InDoubt[]; catchUpTimeoutMs?: number }): Promise<ReadbackResult> {
  const nodes: NodeRows[] = [];
  const unchecked: ReadbackResult['unchecked'] = [];
  const leader = inv.hosts.find((h) => h.name === o.leader);
  if (!leader) return { nodes, unchecked: [{ node: o.leader, reason: 'not a host of the inventory' }] };
  let lsn: string;
  try {
    lsn = await withClient(secrets, superuserOn(inv, leader), async (c) => (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn);
    nodes.push(checkRows(leader.name, 'leader', o.acks, o.inDoubt, await rowsOn(inv, secrets, leader, o.run)));
  } catch (e) {
    return { nodes, unchecked: [{ node: leader.name, reason: (e as Error).message }] };
  }
  await Promise.all(
    inv.hosts
      .filter((h) => h.roles.includes('postgres') && h.name !== leader.name)
      .map(async (h) => {
        try {
          await waitReplayed(inv, secrets, h, lsn, o.catchUpTimeoutMs ?? 30_000);
          nodes.push(checkRows(h.name, 'replica', o.acks, o.inDoubt, await rowsOn(inv, secrets, h, o.run)));
        } catch (e) {
          unchecked.push({ node: h.name, reason: (e as Error).message.split('\n')[0]! });
        }
      }),
  );
  nodes.sort((a, b) => (a.role === b.role ? a.node.localeCompare(b.node) : a.role === 'leader' ? -1 : 1));
  return { nodes, unchecked };
}

/**
 * The drill's rows are evidence only until the drill is judged; a repeated
 * drill should not grow the table forever. Bounded: on a primary whose
 * synchronous standby is gone the DELETE waits for ever (seen after a freeze
 * drill), and a cleanup must never hang the drill's verdict.
 */
export async function deleteRun(inv: Inv, secrets: Pick<Secrets, 'get'>, leader: string, run: string, timeoutMs = 10_000): Promise<boolean> {
  const h = inv.hosts.find((x) => x.name === leader);
  if (!h) return false;
  const c = await connect(secrets, superuserOn(inv, h, DATABASES.project.name), { timeoutMs: 3000 });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      c.query(`DELETE FROM ${DRILL_TABLE} WHERE run = $1`, [run]).then(() => true),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(false), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
    abandon(c);
  }
}
