import { readFileSync } from 'node:fs';
import { appViaPgbouncer, pgbouncerAdmin } from '../components/endpoints.js';
import { vectorNames } from '../components/vector.js';
import type { RunContext } from '../context.js';
import { withClient } from '../db/client.js';
import { UsageError } from '../errors.js';
import { runPoolTest, type Progress } from './engine.js';
import type { PoolTestReport } from './stats.js';

/** The soft limit on open files of this process: each agent is one socket here. */
export function openFileLimit(limits = readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  return m ? (m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1])) : undefined;
}

export interface PoolTestRun {
  agents: number;
  durationS: number;
  thinkMs?: number;
  minAgents?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

/** The pool test against the inventory's first PgBouncer, both application databases. */
export async function poolTest(ctx: Pick<RunContext, 'inventory' | 'secrets' | 'pool'>, r: PoolTestRun): Promise<PoolTestReport & { pgbouncerHost: string; thinkMs: number }> {
  const inv = ctx.inventory;
  const host = ctx.pool.specs('pgbouncer')[0];
  if (!host) throw new UsageError(`${inv.file}: no host has the pgbouncer role`);
  const limit = openFileLimit();
  if (limit !== undefined && r.agents + 64 > limit) {
    throw new UsageError(`${r.agents} agents need ${r.agents + 64} open files here, but this shell allows ${limit}`, {
      hint: `Run \`ulimit -n ${r.agents + 1024}\` first (the hard limit is in /proc/self/limits), or use fewer agents.`,
    });
  }
  const endpoints = [appViaPgbouncer(inv, host, 'project'), appViaPgbouncer(inv, host, 'shared')];
  const names = await withClient(ctx.secrets, endpoints[0]!, (c) => vectorNames(inv.postgres.vector, (sql, p) => c.query(sql, p)));
  const thinkMs = r.thinkMs ?? 100;
  const report = await runPoolTest({
    secrets: ctx.secrets,
    endpoints,
    admin: pgbouncerAdmin(inv, host),
    names,
    agents: r.agents,
    durationS: r.durationS,
    thinkMs,
    ...(r.minAgents === undefined ? {} : { minAgents: r.minAgents }),
    ...(r.signal ? { signal: r.signal } : {}),
    ...(r.onProgress ? { onProgress: r.onProgress } : {}),
  });
  return { pgbouncerHost: host.name, thinkMs, ...report };
}

export function formatProgress(p: Progress): string {
  if (p.phase === 'connecting') return `connecting agents: ${p.connected}/${p.agents}`;
  return (
    `${p.elapsedS.toFixed(0).padStart(4)}s/${p.durationS}s  agents ${p.connected}/${p.agents}  ops ${p.ops} (${p.opsPerSecond}/s)  ` +
    `errors ${p.errors}  p99 ${p.p99Ms} ms  PgBouncer cl_waiting ${p.clWaiting} maxwait ${p.maxwaitS.toFixed(3)} s`
  );
}

export function formatReport(r: PoolTestReport & { pgbouncerHost: string; thinkMs: number }): string {
  return [
    `Pool test through PgBouncer on ${r.pgbouncerHost}: ${r.agents} agents for ${r.durationS} s (think time ${r.thinkMs} ms mean)`,
    `  agents sustained   ${r.agentsSustained}/${r.agents}`,
    `  operations         ${r.ops} (${r.opsPerSecond}/s): search ${r.byOp['search'] ?? 0}, upsert ${r.byOp['upsert'] ?? 0}, read ${r.byOp['read'] ?? 0}`,
    `  latency            p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`,
    `  connect            p50 ${r.connectMs.p50} ms, p99 ${r.connectMs.p99} ms`,
    `  errors             ${r.errors} (connection timeouts ${r.connectTimeouts}, operation timeouts ${r.timeouts}, pool exhausted ${r.poolExhausted})`,
    `  PgBouncer          peak cl_waiting ${r.pgbouncer.clWaitingPeak}, peak maxwait ${r.pgbouncer.maxwaitPeakS} s, peak sv_active ${r.pgbouncer.svActivePeak}`,
    ...r.errorSamples.map((s) => `  first ${s}`),
    r.passed ? '  PASS' : `  FAIL: ${r.reasons.join('; ')}`,
  ].join('\n');
}
