#!/usr/bin/env node
// How many agents does one PgBouncer sustain with zero errors?
//
// Method (printed again beside the numbers in the report):
//   1. A fresh lab on loopback (dpgc lab init), `dpgc sprint 0`, `dpgc sprint 1`:
//      PgBouncer with the inventory defaults (transaction pooling,
//      default_pool_size 25, reserve 5, max_client_conn 10000) in front of one
//      PostgreSQL 15 + pgvector.
//   2. For each agent count, dpgc's pool-test engine (the one `dpgc pool-test`
//      and the s1.pool.test check use): every agent is one real SCRAM
//      connection through PgBouncer, opened before the measured window; it
//      then loops over the application mix (40 % HNSW vector search, 30 %
//      upsert into memory_entries, 30 % read by key) with a uniformly random
//      think time around a mean, for a fixed window.
//   3. A level is sustained when every agent kept its connection and there
//      was no error, no connection timeout, no operation timeout (10 s) and
//      no client refused by PgBouncer. The latency percentiles say at what cost.
//   4. Levels go up until one is not sustained (or the list ends).
//
// Usage: bench/pool-capacity.sh [--think 1000] [--duration 30] [--levels 100,500,1000]
//        (the wrapper raises the open-file limit: every agent is a socket here)
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { cpus, totalmem, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const thinks = String(args.think ?? '1000,100').split(',').map(Number);
const durationS = Number(args.duration ?? 30);
const levels = String(args.levels ?? '100,250,500,1000,1500,2000,3000,4000,5000').split(',').map(Number);
const subnet = args.subnet ?? '127.0.20';
const out = args.out ?? join(root, 'bench', 'pool-capacity.md');

const { loadInventory } = await import(join(root, 'dist/src/config/load.js'));
const { Secrets, secretsPathFor } = await import(join(root, 'dist/src/config/secrets.js'));
const { caPathsFor } = await import(join(root, 'dist/src/components/ca.js'));
const { HostPool } = await import(join(root, 'dist/src/hosts/pool.js'));
const { silentLogger } = await import(join(root, 'dist/src/output/log.js'));
const { poolTest } = await import(join(root, 'dist/src/pooltest/run.js'));

const dpgc = (a) => execFileSync('node', [join(root, 'bin/dpgc.js'), ...a], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CI: 'true', NO_COLOR: '1' } });
const dir = mkdtempSync('/tmp/dpgc-bench-');
// Daemons run as their own users and must traverse the lab directory.
chmodSync(dir, 0o755);
const config = join(dir, 'dpgc.yaml');
const log = (s) => process.stderr.write(`${s}\n`);

const rows = [];
const started = new Date();
const loadBefore = loadavg();
try {
  log(`bench: lab on ${subnet}.x in ${dir}`);
  dpgc(['-c', config, 'lab', 'init', '--subnet', subnet, '--dir', join(dir, 'lab')]);
  dpgc(['-c', config, '--yes', 'sprint', '0']);
  dpgc(['-c', config, '--yes', 'sprint', '1']);
  const inventory = await loadInventory(config);
  const ctx = { inventory, secrets: new Secrets(secretsPathFor(inventory.file), { caCert: caPathsFor(inventory.file).cert }), pool: new HostPool(inventory, { dryRun: false, logger: silentLogger }) };
  for (const thinkMs of thinks) {
    for (const agents of levels) {
      log(`bench: ${agents} agents, think ${thinkMs} ms, ${durationS} s`);
      const t0 = Date.now();
      let r;
      try {
        r = await poolTest(ctx, { agents, durationS, thinkMs, minAgents: 0, onProgress: (p) => log(`  ${p.phase} ${p.elapsedS}s agents ${p.connected}/${p.agents} ops ${p.ops} errors ${p.errors} p99 ${p.p99Ms} ms cl_waiting ${p.clWaiting}`) });
      } catch (e) {
        log(`  failed to run: ${e.message}`);
        rows.push({ thinkMs, agents, failed: e.message.split('\n')[0] });
        break;
      }
      rows.push({ thinkMs, agents, wallS: (Date.now() - t0) / 1000, load: loadavg()[0], ...r });
      log(`  ${r.passed ? 'sustained' : 'NOT sustained'}: ${r.opsPerSecond} ops/s p99 ${r.latencyMs.p99} ms errors ${r.errors}`);
      if (!r.passed) break;
    }
  }
  await ctx.pool.close();
} finally {
  try {
    dpgc(['-c', config, '--yes', 'lab', 'down']);
  } catch {
    // A lab that never came up has nothing to take down.
  }
  rmSync(dir, { recursive: true, force: true });
}

const pgb = readFileSync(join(root, 'templates/pgbouncer/pgbouncer.ini.eta'), 'utf8').includes('pool_mode') ? 'transaction pooling, default_pool_size 25, reserve_pool_size 5 (reserve_pool_timeout 3 s), max_client_conn 10000' : '';
const best = (pred) => thinks.map((t) => ({ t, n: Math.max(0, ...rows.filter((r) => r.thinkMs === t && pred(r)).map((r) => r.agents)) }));
const md = [
  '# Pool capacity: how many agents one PgBouncer sustains',
  '',
  `Measured ${started.toISOString()} by \`bench/pool-capacity.sh\` (source: \`bench/pool-capacity.mjs\`); re-run it to measure again.`,
  '',
  '## Result',
  '',
  ...best((r) => r.passed).map(({ t, n }) => `- Think time ${t} ms: **${n} agents** sustained with zero errors, zero timeouts and zero pool exhaustion (highest level tried that passed).`),
  ...best((r) => r.passed && r.latencyMs.p99 < 1000).map(({ t, n }) => `- Think time ${t} ms: ${n} agents with p99 latency under 1 s as well.`),
  '',
  '## Method',
  '',
  `- Machine: ${cpus().length} CPU cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; load average ${loadBefore[0].toFixed(1)} before the run. The lab shares these cores: PostgreSQL, PgBouncer (single-threaded), the exporters, Prometheus and the load generator itself all run here, and other work on the machine can shift the numbers.`,
  `- Stack: a fresh lab (\`dpgc lab init\`, \`dpgc sprint 0\`, \`dpgc sprint 1\`): PgBouncer 1.18 with the inventory defaults (${pgb}), SCRAM-SHA-256 end to end, in front of one PostgreSQL 15 with pgvector (HNSW, ef_search 100).`,
  '- Load: dpgc\'s pool-test engine, in one Node.js process. Each agent is one real connection through PgBouncer, half to each application database, all opened (32 at a time) before the measured window. In the window each agent loops: one operation from the application mix (40 % vector search over 384-dimension embeddings through `searchMemory`, 30 % upsert into `memory_entries` through `storeMemory`, 30 % read by key), then a think time drawn uniformly from 0 to twice the mean.',
  `- Window: ${durationS} s per level; operation timeout 10 s; connection timeout 10 s. PgBouncer's own view (SHOW POOLS every second on the admin console) gives cl_waiting and maxwait.`,
  '- Sustained: every agent kept its connection for the whole window, and there were zero errors of any kind, zero connection timeouts, zero operation timeouts and zero clients refused by PgBouncer. Levels increase until one is not sustained.',
  '',
  '## Numbers',
  '',
  '| think (ms) | agents | sustained | ops/s | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | errors | conn. timeouts | op timeouts | pool exhausted | peak cl_waiting | peak maxwait (s) | peak sv_active | connect p99 (ms) | load avg |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) =>
    r.failed
      ? `| ${r.thinkMs} | ${r.agents} | could not run: ${r.failed} |||||||||||||||`
      : `| ${r.thinkMs} | ${r.agents} | ${r.passed ? 'yes' : `no: ${r.reasons.join('; ')}`} | ${r.opsPerSecond} | ${r.latencyMs.p50} | ${r.latencyMs.p95} | ${r.latencyMs.p99} | ${r.latencyMs.max} | ${r.errors} | ${r.connectTimeouts} | ${r.timeouts} | ${r.poolExhausted} | ${r.pgbouncer.clWaitingPeak} | ${r.pgbouncer.maxwaitPeakS} | ${r.pgbouncer.svActivePeak} | ${r.connectMs.p99} | ${r.load.toFixed(1)} |`,
  ),
  '',
  ...rows.filter((r) => r.errorSamples?.length).map((r) => `- ${r.agents} agents, think ${r.thinkMs} ms: ${r.errorSamples.join('; ')}`),
  '',
];
writeFileSync(out, md.join('\n'));
log(`bench: wrote ${out}`);
