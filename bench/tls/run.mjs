#!/usr/bin/env node
// What TLS costs on the application path: the same cluster measured before
// and after sprint 5 makes TLS required, in one run.
//
// Method (printed again beside the numbers in the report):
//   1. A fresh lab on loopback (dpgc lab init), sprints 0-4: PgBouncer in
//      front of HAProxy and three Patroni members, everything in plaintext.
//   2. "plaintext": dpgc's pool-test engine (the one `dpgc pool-test` and
//      s1.pool.test use) with N agents through PgBouncer for the window,
//      then the new-connection rate: connections opened one after another
//      (and C at a time), each a SCRAM login through PgBouncer, `SELECT 1`,
//      closed; each connection's encryption is recorded.
//   3. `dpgc sprint 5`: PostgreSQL serves and requires TLS, PgBouncer
//      requires it of clients and uses verify-full to the servers.
//   4. "TLS": the same measurements again, clients verifying PgBouncer's
//      certificate against the cluster CA.
//   The ratio TLS/plaintext is the cost. Sprint 5 also turns on pgaudit (DDL
//   and ROLE classes only: the workload's DML is not audited) and connection
//   logging (PgBouncer keeps its server connections, so few are logged).
//
// Usage: node bench/tls/run.mjs [--subnet 127.0.74] [--agents 40] [--duration 60] [--think 10]
//                               [--connections 300] [--concurrency 8]
// Needs root (the lab runs daemons as their users) and a built dpgc (`npm run build`).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const subnet = args.subnet ?? '127.0.74';
const agents = Number(args.agents ?? 40);
const durationS = Number(args.duration ?? 60);
const thinkMs = Number(args.think ?? 10);
const connections = Number(args.connections ?? 300);
const concurrency = Number(args.concurrency ?? 8);
const out = args.out ?? join(root, 'bench', 'tls', 'RESULTS.md');

const { loadInventory } = await import(join(root, 'dist/src/config/load.js'));
const { Secrets, secretsPathFor } = await import(join(root, 'dist/src/config/secrets.js'));
const { caPathsFor } = await import(join(root, 'dist/src/components/ca.js'));
const { HostPool } = await import(join(root, 'dist/src/hosts/pool.js'));
const { silentLogger } = await import(join(root, 'dist/src/output/log.js'));
const { poolTest } = await import(join(root, 'dist/src/pooltest/run.js'));
const { connect } = await import(join(root, 'dist/src/db/client.js'));
const { appViaPgbouncer } = await import(join(root, 'dist/src/components/endpoints.js'));

const log = (s) => process.stderr.write(`${s}\n`);
const dir = mkdtempSync('/tmp/dpgc-bench-tls-');
// Daemons run as their own users and must traverse the lab directory.
chmodSync(dir, 0o755);
const config = join(dir, 'dpgc.yaml');
const dpgc = (a) => {
  const t0 = Date.now();
  execFileSync('node', [join(root, 'bin/dpgc.js'), '-c', config, ...a], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CI: 'true', NO_COLOR: '1' } });
  return (Date.now() - t0) / 1000;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const r1 = (x) => Math.round(x * 10) / 10;

/** N logins through PgBouncer, `concurrency` at a time: rate and latency of a whole connect + SELECT 1 + close. */
async function connectionRate(secrets, ep, n, conc) {
  const times = [];
  const encrypted = new Set();
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < n) {
        next++;
        const s = performance.now();
        try {
          const c = await connect(secrets, ep, { timeoutMs: 10_000, applicationName: 'dpgc-bench-tls' });
          encrypted.add(Boolean(c.connection?.stream?.encrypted));
          await c.query('SELECT 1');
          await c.end();
          times.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  return { n, conc, perS: r1(times.length / wallS), p50: r1(pct(times, 50)), p99: r1(pct(times, 99)), errors, encrypted: [...encrypted] };
}

async function measure(label) {
  const inventory = await loadInventory(config);
  const secrets = new Secrets(secretsPathFor(inventory.file), { caCert: caPathsFor(inventory.file).cert });
  const pool = new HostPool(inventory, { dryRun: false, logger: silentLogger });
  try {
    const pgb = inventory.hosts.find((h) => h.roles.includes('pgbouncer'));
    const ep = appViaPgbouncer(inventory, pgb, 'project');
    log(`bench: ${label}: pool test, ${agents} agents, think ${thinkMs} ms, ${durationS} s`);
    const load0 = loadavg()[0];
    const p = await poolTest({ inventory, secrets, pool }, { agents, durationS, thinkMs, minAgents: 0 });
    log(`  ${p.opsPerSecond} ops/s, p50 ${p.latencyMs.p50} ms, p99 ${p.latencyMs.p99} ms, errors ${p.errors}`);
    log(`bench: ${label}: ${connections} logins one at a time, then ${concurrency} at a time`);
    const serial = await connectionRate(secrets, ep, connections, 1);
    const parallel = await connectionRate(secrets, ep, connections, concurrency);
    log(`  ${serial.perS}/s serial (p99 ${serial.p99} ms), ${parallel.perS}/s with ${concurrency} at a time (p99 ${parallel.p99} ms)`);
    return { label, load: r1(load0), pool: p, serial, parallel };
  } finally {
    await pool.close();
  }
}

const started = new Date();
const runs = [];
const walls = {};
try {
  log(`bench: lab on ${subnet}.x in ${dir}`);
  dpgc(['lab', 'init', '--subnet', subnet, '--dir', join(dir, 'lab')]);
  for (const n of ['0', '1', '2', '3', '4']) walls[`sprint ${n}`] = dpgc(['--yes', 'sprint', n]);
  runs.push(await measure('plaintext'));
  walls['sprint 5'] = dpgc(['--yes', 'sprint', '5']);
  runs.push(await measure('TLS'));
} finally {
  try {
    dpgc(['--yes', 'lab', 'down']);
  } catch {
    // A lab that never came up has nothing to take down.
  }
  rmSync(dir, { recursive: true, force: true });
}

const [a, b] = runs;
const ratio = (x, y) => (y ? (x / y).toFixed(2) : '?');
const row = (r) =>
  `| ${r.label} | ${r.pool.opsPerSecond} | ${r.pool.latencyMs.p50} | ${r.pool.latencyMs.p99} | ${r.pool.errors} | ${r.serial.perS} | ${r.serial.p99} | ${r.parallel.perS} | ${r.parallel.p99} | ${r.serial.errors + r.parallel.errors} | ${[...new Set([...r.serial.encrypted, ...r.parallel.encrypted])].map((e) => (e ? 'TLS' : 'plain')).join(', ')} | ${r.load} |`;
const md = [
  '# What TLS costs on the application path',
  '',
  `Measured ${started.toISOString()} by \`node bench/tls/run.mjs\`; re-run it to measure again.`,
  '',
  '## Result',
  '',
  `- Pool test (${agents} agents, think ${thinkMs} ms, ${durationS} s): throughput TLS/plaintext **${ratio(b.pool.opsPerSecond, a.pool.opsPerSecond)}**, p99 TLS/plaintext **${ratio(b.pool.latencyMs.p99, a.pool.latencyMs.p99)}** (${a.pool.latencyMs.p99} → ${b.pool.latencyMs.p99} ms).`,
  `- New connections through PgBouncer: ${b.serial.perS}/s with TLS against ${a.serial.perS}/s without, one at a time (ratio ${ratio(b.serial.perS, a.serial.perS)}); ${b.parallel.perS}/s against ${a.parallel.perS}/s with ${concurrency} at a time (ratio ${ratio(b.parallel.perS, a.parallel.perS)}).`,
  '',
  '## Numbers',
  '',
  `| path | pool ops/s | p50 (ms) | p99 (ms) | errors | logins/s (1 at a time) | login p99 (ms) | logins/s (${concurrency} at a time) | login p99 (ms) | login errors | client side seen | load avg |`,
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
  row(a),
  row(b),
  '',
  `Wall times (s): ${Object.entries(walls).map(([k, v]) => `${k} ${r1(v)}`).join(', ')}.`,
  '',
  '## Method',
  '',
  `- Machine: ${cpus().length} CPU cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM. The lab shares these cores: three PostgreSQL members, Patroni, etcd, HAProxy, PgBouncer (single-threaded), the exporters, Prometheus and the load generator all run here; the load average beside each row was read as it began.`,
  '- One run, one lab: sprints 0-4 (everything in plaintext), the "plaintext" measurements, `dpgc sprint 5` (TLS required: clients → PgBouncer with TLS 1.2+ against its certificate from the cluster CA; PgBouncer → HAProxy → leader verify-full), the "TLS" measurements. The path: load generator → PgBouncer (transaction pooling) → HAProxy (TCP pass-through) → the leader.',
  `- Pool test: dpgc's pool-test engine. Every agent is one connection through PgBouncer, opened before the window and kept; it loops over the application mix (40 % HNSW vector search, 30 % upsert into memory_entries, 30 % read by key) with a think time uniform in 0..${2 * thinkMs} ms. TLS costs this path the encryption of each query and answer, not the handshake.`,
  `- Logins: ${connections} connections, each a TCP connect, (TLS handshake,) SCRAM-SHA-256 login to PgBouncer, \`SELECT 1\`, close; first one at a time, then ${concurrency} at a time. PgBouncer keeps its server connections, so this measures PgBouncer's client side: the TLS handshake is on top of a SCRAM exchange that already costs 4096 PBKDF2 iterations.`,
  '- Sprint 5 also turns on pgaudit (DDL and ROLE classes: the workload\'s statements are not audited) and log_connections (few: PgBouncer pools its server connections).',
  '',
];
writeFileSync(out, md.join('\n'));
log(`bench: wrote ${out}`);
