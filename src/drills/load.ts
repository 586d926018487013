import type { Secrets } from '../config/secrets.js';
import { connect, type Client, type Endpoint } from '../db/client.js';
import type { Ack, InDoubt, LoadLog } from './types.js';
import { becomes, sleep } from '../wait.js';
import { DRILL_SCHEMA } from '../db/schemas.js';

/**
 * The drill's clients: writers insert sequence-numbered rows through the
 * application path and remember every insert whose COMMIT was acknowledged;
 * readers query through the replica port. Both behave like a careful
 * application: a statement timeout, reconnect after any error with a short
 * backoff, never a retry of the same row (a retried in-doubt insert would
 * make the duplicate check measure the client instead of the cluster).
 */
export const DRILL_TABLE = `${DRILL_SCHEMA}.writes`;

export const DRILL_DDL = [
  `CREATE SCHEMA IF NOT EXISTS ${DRILL_SCHEMA}`,
  // No unique key on (run, writer, seq) on purpose: a unique index would make
  // "no row appears twice" true by construction instead of measured.
  `CREATE TABLE IF NOT EXISTS ${DRILL_TABLE} (run text NOT NULL, writer int NOT NULL, seq bigint NOT NULL, client_at timestamptz NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  `CREATE INDEX IF NOT EXISTS writes_run_writer_seq ON ${DRILL_TABLE} (run, writer, seq)`,
];

export interface LoadOptions {
  run: string;
  writers: number;
  readers: number;
  writeEndpoint: Endpoint;
  readEndpoint: Endpoint;
  /** Pause between one writer's inserts: paced, so the load does not starve Patroni and etcd of CPU on a small lab. */
  writeIntervalMs?: number;
  readIntervalMs?: number;
  /** An application's statement timeout: an insert not acknowledged by then is abandoned as in doubt. */
  statementTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export interface RunningLoad {
  /** Acknowledged writes so far (the live array: read, do not modify). */
  readonly acks: readonly Ack[];
  /** Resolves once every writer has had an acknowledged insert after `since`. */
  allWritersAckedAfter(since: number, timeoutMs: number): Promise<boolean>;
  stop(): Promise<LoadLog>;
}


/** Close without waiting: a frozen server never answers the Terminate message. */
export function abandon(c: Client): void {
  const stream = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
  void c.end().catch(() => {});
}

class TimeoutError extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new TimeoutError(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/**
 * Whether a failed insert certainly did not commit. An error response of
 * severity ERROR aborts the transaction; so do PgBouncer's refusals sent
 * before the query reached any server. Anything else (FATAL from the server,
 * a dropped connection, a timeout) leaves the commit in doubt.
 */
const NEVER_SENT = /server login has been failing|no more connections allowed|query_wait_timeout|cannot connect to server|pgbouncer cannot connect/i;
export function certainlyNotCommitted(e: unknown): boolean {
  return (e as { severity?: string }).severity === 'ERROR' || NEVER_SENT.test(e instanceof Error ? e.message : String(e));
}

function short(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  // Connection errors carry the endpoint; one line, no numbers that vary per attempt.
  return m.split('\n')[0]!.replace(/\d+ ms/, 'N ms').slice(0, 160);
}

export function startLoad(secrets: Pick<Secrets, 'get'>, o: LoadOptions): RunningLoad {
  const acks: Ack[] = [];
  const inDoubt: InDoubt[] = [];
  const errors: Record<string, number> = {};
  let refused = 0;
  const reads = { ok: 0, failed: 0, maxGapMs: null as number | null };
  let stopping = false;
  const wInterval = o.writeIntervalMs ?? 20;
  const rInterval = o.readIntervalMs ?? 50;
  const timeout = o.statementTimeoutMs ?? 2000;
  const connTimeout = o.connectTimeoutMs ?? 2000;
  const lastAck = new Map<number, number>();
  const note = (e: unknown) => {
    const k = short(e);
    errors[k] = (errors[k] ?? 0) + 1;
  };

  async function writer(w: number): Promise<void> {
    let client: Client | undefined;
    let seq = 0;
    let backoff = 0;
    while (!stopping) {
      if (!client) {
        try {
          client = await connect(secrets, o.writeEndpoint, { timeoutMs: connTimeout, applicationName: `dpgc-drill-writer-${w}` });
          backoff = 0;
        } catch (e) {
          refused++;
          note(e);
          backoff = Math.min(500, backoff + 100);
          await sleep(backoff);
          continue;
        }
      }
      seq++;
      const sentAt = Date.now();
      try {
        await withTimeout(client.query(`INSERT INTO ${DRILL_TABLE} (run, writer, seq, client_at) VALUES ($1, $2, $3, $4)`, [o.run, w, seq, new Date(sentAt)]), timeout);
        const ackAt = Date.now();
        acks.push({ writer: w, seq, sentAt, ackAt });
        lastAck.set(w, ackAt);
      } catch (e) {
        note(e);
        if (certainlyNotCommitted(e)) refused++;
        else inDoubt.push({ writer: w, seq, at: Date.now(), error: short(e) });
        abandon(client);
        client = undefined;
        await sleep(100);
        continue;
      }
      await sleep(wInterval);
    }
    if (client) await withTimeout(client.end(), 1000).catch(() => client && abandon(client));
  }

  async function reader(r: number): Promise<void> {
    let client: Client | undefined;
    let last: number | undefined;
    while (!stopping) {
      try {
        client ??= await connect(secrets, o.readEndpoint, { timeoutMs: connTimeout, applicationName: `dpgc-drill-reader-${r}` });
        await withTimeout(client.query(`SELECT max(seq) FROM ${DRILL_TABLE} WHERE run = $1 AND writer = $2`, [o.run, r % Math.max(1, o.writers)]), timeout);
        const now = Date.now();
        if (last !== undefined) reads.maxGapMs = Math.max(reads.maxGapMs ?? 0, now - last);
        last = now;
        reads.ok++;
      } catch (e) {
        reads.failed++;
        note(e);
        if (client) abandon(client);
        client = undefined;
        await sleep(200);
        continue;
      }
      await sleep(rInterval);
    }
    if (client) await withTimeout(client.end(), 1000).catch(() => client && abandon(client));
  }

  const all = [...Array.from({ length: o.writers }, (_, i) => writer(i)), ...Array.from({ length: o.readers }, (_, i) => reader(i))];

  return {
    acks,
    async allWritersAckedAfter(since, timeoutMs) {
      return becomes(() => Array.from({ length: o.writers }, (_, w) => (lastAck.get(w) ?? 0) > since).every(Boolean), { timeoutMs, everyMs: 50 }, 'every writer acknowledged again');
    },
    async stop() {
      const stoppedAt = Date.now();
      stopping = true;
      await Promise.all(all);
      return { acks, inDoubt, refused, errors, reads, stoppedAt };
    },
  };
}
