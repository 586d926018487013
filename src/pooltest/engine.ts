import type { Secrets } from '../config/secrets.js';
import type { VectorNames } from '../components/vector.js';
import { connect, type Client, type Endpoint } from '../db/client.js';
import { sampleView } from './pgbouncer-view.js';
import { LatencyHistogram, classifyError, round, verdict, type ErrorKind, type PoolTestReport } from './stats.js';
import { cleanup, embeddings, pickOp, runOp, type OpName } from './workload.js';
import { sleep } from '../wait.js';

/**
 * N agents, each one real connection through PgBouncer, each running the
 * application's mix with a think time between operations, for a bounded
 * duration. Connections are opened a few at a time (like agents starting
 * up), and the clock for the measured window starts once all are open.
 */
export interface PoolTestOptions {
  secrets: Pick<Secrets, 'get'>;
  /** Application endpoints through PgBouncer; agent i uses endpoints[i % length]. */
  endpoints: Endpoint[];
  /** PgBouncer's admin console, for SHOW POOLS. */
  admin: Endpoint;
  names: VectorNames;
  agents: number;
  durationS: number;
  /** Mean pause between one agent's operations (uniform 0..2×). */
  thinkMs?: number;
  opTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Connections opened at once during ramp-up. */
  rampConcurrency?: number;
  minAgents?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  progressEveryMs?: number;
}

export interface Progress {
  phase: 'connecting' | 'running';
  elapsedS: number;
  durationS: number;
  connected: number;
  agents: number;
  ops: number;
  opsPerSecond: number;
  errors: number;
  p99Ms: number;
  clWaiting: number;
  maxwaitS: number;
}


class OpTimeout extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new OpTimeout(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** Close without waiting for the server (it may be the thing that hangs). */
function abandon(c: Client): void {
  (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  void c.end().catch(() => {});
}

export async function runPoolTest(o: PoolTestOptions): Promise<PoolTestReport> {
  const think = o.thinkMs ?? 100;
  const opTimeout = o.opTimeoutMs ?? 10_000;
  const connTimeout = o.connectTimeoutMs ?? 10_000;
  const vecs = embeddings(64);
  const lat = new LatencyHistogram();
  const connectLat = new LatencyHistogram();
  const byOp: Record<OpName, number> = { search: 0, upsert: 0, read: 0 };
  const errs: Record<ErrorKind, number> = { 'connect-timeout': 0, timeout: 0, 'pool-exhausted': 0, error: 0 };
  const samples = new Map<string, string>();
  const clients = new Array<Client | undefined>(o.agents);
  const lost = new Set<number>();
  let ops = 0;
  let phase: Progress['phase'] = 'connecting';
  let started = Date.now();
  let stopAt = Number.POSITIVE_INFINITY;
  const stopping = () => Date.now() >= stopAt || Boolean(o.signal?.aborted);

  const note = (kind: ErrorKind, e: unknown) => {
    errs[kind] += 1;
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 200);
    if (!samples.has(kind)) samples.set(kind, `${kind}: ${msg}`);
  };

  const open = async (i: number): Promise<Client | undefined> => {
    const t0 = performance.now();
    try {
      const c = await connect(o.secrets, o.endpoints[i % o.endpoints.length]!, { timeoutMs: connTimeout, applicationName: `dpgc-pool-test-${i}` });
      connectLat.record(performance.now() - t0);
      return c;
    } catch (e) {
      note(classifyError(e, 'connect'), e);
      return undefined;
    }
  };

  const view = sampleView(o.secrets, o.admin, [...new Set(o.endpoints.map((e) => e.database))]);

  // Ramp-up: open every connection before the measured window.
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(o.rampConcurrency ?? 32, o.agents) }, async () => {
      for (let i = next++; i < o.agents && !o.signal?.aborted; i = next++) clients[i] = await open(i);
    }),
  );

  const progress = () => {
    const elapsedS = phase === 'running' ? (Date.now() - started) / 1000 : 0;
    const now = view.current().now;
    o.onProgress?.({
      phase,
      elapsedS: round(elapsedS, 1),
      durationS: o.durationS,
      connected: clients.filter(Boolean).length,
      agents: o.agents,
      ops,
      opsPerSecond: elapsedS > 0 ? round(ops / elapsedS, 1) : 0,
      errors: Object.values(errs).reduce((a, b) => a + b, 0),
      p99Ms: round(lat.percentile(0.99), 1),
      clWaiting: now.clWaiting,
      maxwaitS: now.maxwaitS,
    });
  };
  const ticker = setInterval(progress, o.progressEveryMs ?? 2000);

  phase = 'running';
  started = Date.now();
  stopAt = started + o.durationS * 1000;

  const agent = async (i: number) => {
    let n = 0;
    // Spread the first operations over one think time, so agents do not march in step.
    await sleep(Math.random() * think);
    while (!stopping()) {
      let c = clients[i];
      if (!c) {
        lost.add(i);
        c = clients[i] = await open(i);
        if (!c) {
          await sleep(500);
          continue;
        }
      }
      const op = n === 0 ? 'upsert' : pickOp(Math.random());
      const t0 = performance.now();
      try {
        await withTimeout(runOp(c, o.names, op, i, n, vecs), opTimeout);
        lat.record(performance.now() - t0);
        byOp[op] += 1;
        ops += 1;
      } catch (e) {
        note(e instanceof OpTimeout ? 'timeout' : classifyError(e, 'op'), e);
        // An SQL error leaves a usable connection; anything else (timeout, FATAL, reset) does not.
        if ((e as { severity?: string }).severity !== 'ERROR') {
          abandon(c);
          clients[i] = undefined;
          lost.add(i);
        }
      }
      n += 1;
      if (think > 0) await sleep(Math.random() * 2 * think);
    }
  };
  await Promise.all(Array.from({ length: o.agents }, (_, i) => agent(i)));
  const elapsedS = (Date.now() - started) / 1000;
  clearInterval(ticker);
  progress();

  const pgbouncer = await view.stop();
  // The test's rows go away with it: one delete per database, on any agent's connection to it.
  for (let k = 0; k < o.endpoints.length; k++) {
    const c = clients.find((x, i) => x && i % o.endpoints.length === k);
    if (c) await cleanup(c).catch(() => 0);
  }
  await Promise.all(clients.map((c) => (c ? c.end().catch(() => {}) : Promise.resolve())));

  const errors = Object.values(errs).reduce((a, b) => a + b, 0);
  const base = {
    agents: o.agents,
    agentsSustained: o.agents - new Set([...lost, ...clients.flatMap((c, i) => (c ? [] : [i]))]).size,
    durationS: round(elapsedS, 1),
    ops,
    opsPerSecond: round(ops / Math.max(elapsedS, 0.001), 1),
    byOp,
    errors,
    connectTimeouts: errs['connect-timeout'],
    timeouts: errs.timeout,
    poolExhausted: errs['pool-exhausted'],
    errorSamples: [...samples.values()],
    latencyMs: {
      p50: round(lat.percentile(0.5)),
      p95: round(lat.percentile(0.95)),
      p99: round(lat.percentile(0.99)),
      max: round(lat.maxMs),
      mean: round(lat.count ? lat.sumMs / lat.count : 0),
    },
    connectMs: { p50: round(connectLat.percentile(0.5)), p99: round(connectLat.percentile(0.99)), max: round(connectLat.maxMs) },
    pgbouncer: { ...pgbouncer, maxwaitPeakS: round(pgbouncer.maxwaitPeakS, 3) },
  };
  return { ...base, ...verdict(base, o.minAgents ?? 40) };
}
