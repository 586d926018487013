#!/usr/bin/env node
// Vector search as an application sees it, before and after dpgc sizes PostgreSQL to its hosts.
//
// Method (printed again beside the numbers in the report):
//   1. A fresh lab on loopback (dpgc lab init), `dpgc sprint 0`, `dpgc sprint 1`: one PostgreSQL 15 +
//      pgvector on db1, PgBouncer (transaction pooling, inventory defaults) on ctl. Phase "before" runs
//      with the settings dpgc wrote before it sized anything (PostgreSQL's defaults, maintenance_work_mem
//      512MB), pinned through postgres.settings; phase "after" removes them and re-runs `dpgc sprint 0`,
//      which sizes the server (profile vector) and restarts it. Same lab, same corpus, same queries.
//   2. Corpus: a seeded Gaussian mixture on the unit sphere, 384 dimensions (no download): C cluster
//      centres drawn uniformly on the sphere; each vector is its centre plus a random 12-dimensional
//      local spread and a little isotropic noise, normalised. Loaded into claude_flow_shared's
//      claude_flow.embeddings (sprint 0's table) with explicit ids; queries are fresh draws from the same
//      mixture. Ground truth: exact cosine top-10 computed in this process over the same float32 values.
//   3. Index: sprint 0's HNSW index (dpgc's own SQL: m=16, ef_construction=64, vector_cosine_ops), built
//      after the load, timed, its size from pg_relation_size. Built again in each phase.
//   4. For each ef_search: set per database (ALTER DATABASE … SET, as dpgc does) and PgBouncer told to
//      reconnect its servers (RECONNECT), checked through PgBouncer with SHOW. Then recall@10 against
//      the exact top-10 (mean over the queries, through PgBouncer), latency at 1 client through PgBouncer
//      (p50/p95/p99 of one query each, client-side wall time), and at 16 clients through PgBouncer and
//      directly to PostgreSQL: latency percentiles and QPS (queries / wall time of the run).
//   5. pgbench (TPC-B-like, built-in script, simple protocol) through PgBouncer in claude_flow_shared,
//      scale 10, 8 clients, 2 threads, for --pgbench-s seconds in each phase.
//   The machine is shared with other work: the load average is recorded at the start and end of each phase.
//
// Usage (root, `npm run build` first): node bench/vector/run.mjs [--rows 100000] [--subnet 127.0.141]
//   [--queries 200] [--one 1000] [--sixteen 100] [--efs 20,40,64,100,200] [--pgbench-s 20] [--out bench/vector/RESULTS.md]
//   [--m 16] [--ef-construction 64]: HNSW build parameters other than dpgc's, to compare
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const ROWS = Number(args.rows ?? 100_000);
const DIM = 384;
const CLUSTERS = Number(args.clusters ?? 200);
const QUERIES = Number(args.queries ?? 200);
const ONE = Number(args.one ?? 1000);
const SIXTEEN = Number(args.sixteen ?? 100);
const EFS = String(args.efs ?? '20,40,64,100,200').split(',').map(Number);
const PGBENCH_S = Number(args['pgbench-s'] ?? 20);
const SEED = Number(args.seed ?? 20261202);
const subnet = args.subnet ?? '127.0.141';
const out = args.out ?? join(root, 'bench', 'vector', 'RESULTS.md');
const K = 10;

const { loadInventory } = await import(join(root, 'dist/src/config/load.js'));
const { Secrets, secretsPathFor } = await import(join(root, 'dist/src/config/secrets.js'));
const { caPathsFor } = await import(join(root, 'dist/src/components/ca.js'));
const { HostPool } = await import(join(root, 'dist/src/hosts/pool.js'));
const { silentLogger } = await import(join(root, 'dist/src/output/log.js'));
const { connect, withClient } = await import(join(root, 'dist/src/db/client.js'));
const { appOn, appViaPgbouncer, superuserOn, firstPostgres, DATABASES, ROLES_DB } = await import(join(root, 'dist/src/components/endpoints.js'));
const { HNSW_INDEXES } = await import(join(root, 'dist/src/components/schema.js'));
const { hnswIndexSql, HNSW_PARAMS: DPGC_HNSW, PGVECTOR_NAMES } = await import(join(root, 'dist/src/components/vector.js'));
// --m / --ef-construction try other build parameters than dpgc's own; the report says which were used.
const HNSW_PARAMS = { m: Number(args.m ?? DPGC_HNSW.m), ef_construction: Number(args['ef-construction'] ?? DPGC_HNSW.ef_construction) };
const { clusterSizing } = await import(join(root, 'dist/src/components/sizing.js'));
const { mulberry32, gaussian } = await import(join(root, 'dist/src/checks/embeddings.js'));

/** What dpgc wrote before it sized anything: PostgreSQL 15's defaults, and maintenance_work_mem 512MB from its dpgc.conf. */
const BEFORE = {
  shared_buffers: '128MB', effective_cache_size: '4GB', work_mem: '4MB', maintenance_work_mem: '512MB', max_parallel_maintenance_workers: 2,
  max_wal_size: '1GB', min_wal_size: '80MB', wal_compression: 'off', checkpoint_completion_target: 0.9, random_page_cost: 4, effective_io_concurrency: 1, huge_pages: 'try',
};

const log = (s) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const dir = mkdtempSync('/tmp/dpgc-vbench-');
chmodSync(dir, 0o755);
const config = join(dir, 'dpgc.yaml');
/**
 * A dpgc command; exit 1 (a criterion failed) is tolerated for sprints: their tasks ran, and on this shared
 * machine the load-bound criteria can fail for reasons that are not this bench's. It is logged, not hidden.
 */
const dpgc = (a) => {
  try {
    execFileSync('node', [join(root, 'bin/dpgc.js'), '-c', config, ...a], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CI: 'true', NO_COLOR: '1' } });
  } catch (e) {
    if (e.status !== 1 || !a.includes('sprint')) throw e;
    log(`dpgc ${a.join(' ')}: exit 1 (a criterion failed, see above); going on`);
  }
};
const setSettings = (settings) => {
  const doc = parse(readFileSync(config, 'utf8'));
  doc.postgres = { ...(doc.postgres ?? {}), settings };
  writeFileSync(config, stringify(doc));
};
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

// ---------------------------------------------------------------- corpus (seeded, no download)
function mixture(seed) {
  const g = gaussian(mulberry32(seed));
  const unit = (v) => { let n = 0; for (const x of v) n += x * x; n = Math.sqrt(n); return v.map((x) => x / n); };
  const centres = Array.from({ length: CLUSTERS }, () => unit(Array.from({ length: DIM }, g)));
  const spreads = Array.from({ length: CLUSTERS }, () => Array.from({ length: 12 }, () => Array.from({ length: DIM }, () => g() / Math.sqrt(DIM))));
  // Cluster sizes are uneven, like topics in real data (Zipf-like weights).
  const weights = centres.map((_, i) => 1 / (i + 1) ** 0.5);
  const total = weights.reduce((a, b) => a + b, 0);
  const cum = []; weights.reduce((a, w, i) => (cum[i] = a + w / total), 0);
  const pick = mulberry32(seed ^ 0x9e3779b9);
  return () => {
    const r = pick();
    let k = cum.findIndex((c) => r <= c); if (k < 0) k = CLUSTERS - 1;
    const v = centres[k].slice();
    for (const b of spreads[k]) { const c = 0.6 * g(); for (let i = 0; i < DIM; i++) v[i] += c * b[i]; }
    for (let i = 0; i < DIM; i++) v[i] += (0.15 / Math.sqrt(DIM)) * g();
    // Six significant digits, parsed into float32 by the server and by Float32Array alike: the stored vectors and the
    // ones the exact search uses are the same numbers.
    const six = unit(v).map((x) => Number(x.toPrecision(6)));
    return { f32: Float32Array.from(six), lit: `[${six.join(',')}]` };
  };
}

function exactTopK(corpus, q) {
  const best = []; // [score, id] ascending by score, length <= K
  for (let r = 0; r < ROWS; r++) {
    let dot = 0; const o = r * DIM;
    for (let i = 0; i < DIM; i++) dot += corpus[o + i] * q[i];
    if (best.length < K || dot > best[0][0]) {
      best.push([dot, r + 1]); best.sort((a, b) => a[0] - b[0]); if (best.length > K) best.shift();
    }
  }
  return best.map((b) => String(b[1]));
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const ms = (x) => x.toFixed(2);

// ---------------------------------------------------------------- measurements
const SEARCH = 'SELECT id FROM claude_flow.embeddings ORDER BY embedding <=> $1::vector LIMIT 10';

async function timedQueries(ctx, ep, clients, perClient, qs) {
  const conns = await Promise.all(Array.from({ length: clients }, () => connect(ctx.secrets, ep, { applicationName: 'vbench' })));
  try {
    const lat = [];
    const t0 = process.hrtime.bigint();
    await Promise.all(conns.map(async (c, ci) => {
      for (let i = 0; i < perClient; i++) {
        const q = qs[(ci * perClient + i) % qs.length];
        const s = process.hrtime.bigint();
        await c.query(SEARCH, [q]);
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      }
    }));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    return { p50: pct(lat, 50), p95: pct(lat, 95), p99: pct(lat, 99), qps: lat.length / wall, n: lat.length };
  } finally {
    await Promise.all(conns.map((c) => c.end().catch(() => {})));
  }
}

async function setEf(ctx, ef) {
  const inv = ctx.inventory;
  const db = DATABASES.shared.name;
  await withClient(ctx.secrets, superuserOn(inv, firstPostgres(inv), db), (c) => c.query(`ALTER DATABASE ${db} SET ${PGVECTOR_NAMES.efSearchGuc} = ${ef}`));
  const ctl = inv.hosts.find((h) => h.roles.includes('pgbouncer'));
  const admin = { name: ctl.name, address: ctl.address, port: inv.ports.pgbouncer, database: 'pgbouncer', user: ROLES_DB.pgbouncerAdmin.user, secret: ROLES_DB.pgbouncerAdmin.secret };
  await withClient(ctx.secrets, admin, (c) => c.query(`RECONNECT ${db}`));
  const seen = await withClient(ctx.secrets, appViaPgbouncer(inv, ctl, 'shared'), async (c) => (await c.query(`SHOW ${PGVECTOR_NAMES.efSearchGuc}`)).rows[0]);
  const v = Object.values(seen)[0];
  if (String(v) !== String(ef)) throw new Error(`through PgBouncer ${PGVECTOR_NAMES.efSearchGuc} is ${v}, expected ${ef}`);
}

async function phase(name, ctx, data) {
  const inv = ctx.inventory;
  const base = firstPostgres(inv);
  const ctl = inv.hosts.find((h) => h.roles.includes('pgbouncer'));
  const res = { name, loadStart: load(), efs: [] };
  const ix = HNSW_INDEXES.find((i) => i.table === 'embeddings');
  await withClient(ctx.secrets, superuserOn(inv, base, DATABASES.shared.name), async (c) => {
    const names = ['shared_buffers', 'effective_cache_size', 'work_mem', 'maintenance_work_mem', 'max_parallel_maintenance_workers', 'max_wal_size', 'random_page_cost', 'huge_pages'];
    res.settings = (await c.query('SELECT name, current_setting(name) AS v FROM pg_settings WHERE name = ANY($1) ORDER BY name', [names])).rows.map((r) => `${r.name}=${r.v}`).join(', ');
    await c.query(`DROP INDEX IF EXISTS ${ix.schema}.${ix.name}`);
    await c.query('CHECKPOINT');
    log(`${name}: building the HNSW index (${res.settings})`);
    const t = Date.now();
    await c.query(hnswIndexSql(PGVECTOR_NAMES, ix, HNSW_PARAMS));
    res.buildS = (Date.now() - t) / 1000;
    res.indexMB = Number((await c.query(`SELECT pg_relation_size('${ix.schema}.${ix.name}') AS b`)).rows[0].b) / 1024 ** 2;
    res.tableMB = Number((await c.query(`SELECT pg_table_size('claude_flow.embeddings') AS b`)).rows[0].b) / 1024 ** 2;
    await c.query('ANALYZE claude_flow.embeddings');
  });
  log(`${name}: index built in ${res.buildS.toFixed(1)} s, ${res.indexMB.toFixed(0)} MB`);
  const viaBouncer = appViaPgbouncer(inv, ctl, 'shared');
  const direct = appOn(inv, base, 'shared');
  for (const ef of EFS) {
    await setEf(ctx, ef);
    // Recall through PgBouncer (also warms the index into memory for this ef).
    const got = await withClient(ctx.secrets, viaBouncer, async (c) => {
      const r = [];
      for (const q of data.queries) r.push((await c.query(SEARCH, [q])).rows.map((x) => String(x.id)));
      return r;
    });
    let sum = 0;
    got.forEach((g, i) => { const truth = new Set(data.truth[i]); sum += g.filter((x) => truth.has(x)).length / K; });
    const one = await timedQueries(ctx, viaBouncer, 1, ONE, data.queries);
    const b16 = await timedQueries(ctx, viaBouncer, 16, SIXTEEN, data.queries);
    const d16 = await timedQueries(ctx, direct, 16, SIXTEEN, data.queries);
    const row = { ef, recall: sum / got.length, one, b16, d16 };
    res.efs.push(row);
    log(`${name} ef ${ef}: recall ${row.recall.toFixed(3)}, 1 client p50/p95/p99 ${ms(one.p50)}/${ms(one.p95)}/${ms(one.p99)} ms; 16 clients QPS bouncer ${b16.qps.toFixed(0)} direct ${d16.qps.toFixed(0)}`);
  }
  if (PGBENCH_S > 0) res.pgbench = await pgbench(ctx, data);
  res.loadEnd = load();
  return res;
}

async function pgbench(ctx, data) {
  const inv = ctx.inventory;
  const ctl = inv.hosts.find((h) => h.roles.includes('pgbouncer'));
  const d = DATABASES.shared;
  // The password travels in the child's environment, never in argv.
  const env = { ...process.env, PGPASSWORD: await ctx.secrets.get(d.secret), PGHOST: ctl.address, PGPORT: String(inv.ports.pgbouncer), PGUSER: d.owner, PGDATABASE: d.name };
  const bin = `/usr/lib/postgresql/${inv.postgres.version}/bin/pgbench`;
  if (!data.pgbenchReady) {
    execFileSync(bin, ['-i', '-s', '10', '-q'], { env, stdio: ['ignore', 'ignore', 'ignore'] });
    data.pgbenchReady = true;
  }
  const o = execFileSync(bin, ['-c', '8', '-j', '2', '-T', String(PGBENCH_S), '-M', 'simple', '-n'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const tps = Number(/tps = ([\d.]+)/.exec(o)?.[1]);
  const lat = Number(/latency average = ([\d.]+) ms/.exec(o)?.[1]);
  log(`pgbench: ${tps.toFixed(0)} tps, latency average ${lat} ms`);
  return { tps, lat };
}

// ---------------------------------------------------------------- main
const startedAt = new Date();
const machine = { cpus: cpus().length, model: cpus()[0]?.model ?? '?', memGiB: (Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) / 1024 ** 2).toFixed(1) };
let ctx;
const results = [];
try {
  log(`lab on ${subnet}.x in ${dir}; load ${load()}`);
  dpgc(['lab', 'init', '--subnet', subnet, '--dir', join(dir, 'lab')]);
  setSettings(BEFORE);
  dpgc(['--yes', 'sprint', '0']);
  // --force: the gate's load-bound re-checks are not what this bench measures, and this machine is shared.
  dpgc(['--yes', 'sprint', '1', '--force']);
  const inventory = await loadInventory(config);
  ctx = { inventory, secrets: new Secrets(secretsPathFor(inventory.file), { caCert: caPathsFor(inventory.file).cert }), pool: new HostPool(inventory, { dryRun: false, logger: silentLogger }) };

  log(`generating ${ROWS} x ${DIM} (seed ${SEED}, ${CLUSTERS} clusters) and ${QUERIES} queries`);
  const next = mixture(SEED);
  const corpus = new Float32Array(ROWS * DIM);
  const literals = [];
  for (let r = 0; r < ROWS; r++) { const x = next(); corpus.set(x.f32, r * DIM); literals.push(x.lit); }
  const queryVecs = Array.from({ length: QUERIES }, next);
  const tTruth = Date.now();
  const truth = queryVecs.map((q) => exactTopK(corpus, q.f32));
  log(`exact top-${K} for ${QUERIES} queries in ${((Date.now() - tTruth) / 1000).toFixed(1)} s`);
  const data = { queries: queryVecs.map((q) => q.lit), truth };

  const base = firstPostgres(inventory);
  const tLoad = Date.now();
  await withClient(ctx.secrets, superuserOn(inventory, base, DATABASES.shared.name), async (c) => {
    const ix = HNSW_INDEXES.find((i) => i.table === 'embeddings');
    await c.query(`DROP INDEX IF EXISTS ${ix.schema}.${ix.name}`);
    await c.query('TRUNCATE claude_flow.embeddings');
    for (let s = 0; s < ROWS; s += 1000) {
      const ids = []; const vs = [];
      for (let r = s; r < Math.min(ROWS, s + 1000); r++) { ids.push(r + 1); vs.push(literals[r]); }
      await c.query(
        `INSERT INTO claude_flow.embeddings (id, content, embedding) OVERRIDING SYSTEM VALUE SELECT i, 'bench-' || i, v::vector FROM unnest($1::bigint[], $2::text[]) AS t(i, v)`,
        [ids, vs],
      );
    }
    await c.query('VACUUM ANALYZE claude_flow.embeddings');
  });
  const loadS = (Date.now() - tLoad) / 1000;
  log(`loaded in ${loadS.toFixed(1)} s`);

  results.push(await phase('before', ctx, data));
  setSettings({});
  dpgc(['--yes', 'sprint', '0']);
  const sizing = await clusterSizing(inventory, ctx.pool);
  results.push(await phase('after', ctx, data));

  // ---------------------------------------------------------------- report
  const target = (r) => r.efs.find((e) => e.recall >= 0.95);
  const lines = [];
  lines.push('# Vector search benchmark: before and after sizing', '');
  lines.push(`Run ${startedAt.toISOString()} by \`node bench/vector/run.mjs${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\` (${((Date.now() - startedAt.getTime()) / 60000).toFixed(1)} min).`, '');
  lines.push('## Method', '');
  lines.push(`- Machine: ${machine.cpus} × ${machine.model}, ${machine.memGiB} GiB, shared with other work (load averages below: 1, 5, 15 min).`);
  lines.push(`- Lab: \`dpgc lab init\` on ${subnet}.x, sprints 0 and 1: PostgreSQL ${inventory.postgres.version} + pgvector on db1, PgBouncer (transaction pooling) on ctl; every host on this one machine.`);
  lines.push(`- Corpus: ${ROWS.toLocaleString('en')} × ${DIM} float32, seeded Gaussian mixture on the unit sphere (seed ${SEED}, ${CLUSTERS} clusters with Zipf-like sizes, each a centre plus a 12-dimensional local spread and isotropic noise), in claude_flow_shared's claude_flow.embeddings; loaded in ${loadS.toFixed(0)} s. ${QUERIES} queries drawn from the same mixture; ground truth: exact cosine top-${K} computed by the bench over the same float32 values.`);
  lines.push(`- Index: ${HNSW_PARAMS.m === DPGC_HNSW.m && HNSW_PARAMS.ef_construction === DPGC_HNSW.ef_construction ? "dpgc's HNSW index" : `HNSW with parameters other than dpgc's (${DPGC_HNSW.m}/${DPGC_HNSW.ef_construction})`} (m=${HNSW_PARAMS.m}, ef_construction=${HNSW_PARAMS.ef_construction}, cosine), rebuilt in each phase after a CHECKPOINT.`);
  lines.push(`- ef_search set per database (ALTER DATABASE … SET) and PgBouncer's server connections renewed (RECONNECT); recall@${K} over the ${QUERIES} queries through PgBouncer; 1 client: ${ONE} queries through PgBouncer; 16 clients: ${SIXTEEN} queries each, through PgBouncer and directly. Latencies are client wall time per query; QPS is queries / wall time.`);
  lines.push(`- pgbench: TPC-B-like built-in script, scale 10, 8 clients, 2 threads, ${PGBENCH_S} s, simple protocol, through PgBouncer.`);
  lines.push(`- Before: the settings dpgc wrote before sizing (${Object.entries(BEFORE).map(([k, v]) => `${k}=${v}`).join(', ')}). After: profile ${inventory.postgres.profile}, sized on ${sizing.basis.from}'s memory shared by ${sizing.basis.sharedBy} postgres hosts (${(sizing.basis.memoryBytes / 1024 ** 3).toFixed(1)} GiB per instance), ${sizing.basis.cpus} CPUs, ${sizing.basis.ssd ? 'SSD' : 'disk not known to be an SSD'}.`, '');
  for (const r of results) {
    lines.push(`## ${r.name === 'before' ? 'Before sizing' : 'After sizing'}`, '');
    lines.push(`Load average ${r.loadStart} at start, ${r.loadEnd} at end. In force: ${r.settings}.`, '');
    lines.push(`Index build ${r.buildS.toFixed(1)} s; index ${r.indexMB.toFixed(0)} MB, table ${r.tableMB.toFixed(0)} MB.${r.pgbench ? ` pgbench ${r.pgbench.tps.toFixed(0)} tps (latency average ${r.pgbench.lat} ms).` : ''}`, '');
    lines.push('| ef_search | recall@10 | 1 client p50 / p95 / p99 ms (PgBouncer) | 16 clients p50 / p95 / p99 ms (PgBouncer) | 16 clients QPS PgBouncer | 16 clients QPS direct | PgBouncer / direct |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const e of r.efs) {
      lines.push(`| ${e.ef} | ${e.recall.toFixed(3)} | ${ms(e.one.p50)} / ${ms(e.one.p95)} / ${ms(e.one.p99)} | ${ms(e.b16.p50)} / ${ms(e.b16.p95)} / ${ms(e.b16.p99)} | ${e.b16.qps.toFixed(0)} | ${e.d16.qps.toFixed(0)} | ${(e.b16.qps / e.d16.qps).toFixed(2)} |`);
    }
    lines.push('');
  }
  const [b, a] = results;
  const ta = target(a);
  lines.push('## Against the targets', '');
  lines.push(`- Smallest ef_search with recall@10 ≥ 0.95 (after): ${ta ? `**${ta.ef}** (recall ${ta.recall.toFixed(3)})` : '**none of the values measured**'}.`);
  if (ta) lines.push(`- p99 ≤ 3 ms at recall ≥ 0.95, one client through PgBouncer: p99 ${ms(ta.one.p99)} ms at ef_search ${ta.ef}: **${ta.one.p99 <= 3 ? 'met' : 'not met'}**${b ? ` (before: ${(() => { const tb = b.efs.find((e) => e.ef === ta.ef); return tb ? `${ms(tb.one.p99)} ms` : '?'; })()})` : ''}.`);
  lines.push(`- 16 clients, PgBouncer QPS within 80% of direct (after): ${a.efs.map((e) => `ef ${e.ef}: ${(e.b16.qps / e.d16.qps).toFixed(2)}`).join(', ')}: **${a.efs.every((e) => e.b16.qps / e.d16.qps >= 0.8) ? 'met' : 'not met'}**.`);
  lines.push(`- Index build: ${b.buildS.toFixed(1)} s before, ${a.buildS.toFixed(1)} s after (${(a.buildS / b.buildS).toFixed(2)}×).`);
  if (a.pgbench && b.pgbench) lines.push(`- pgbench through PgBouncer: ${b.pgbench.tps.toFixed(0)} → ${a.pgbench.tps.toFixed(0)} tps (${(a.pgbench.tps / b.pgbench.tps).toFixed(2)}×).`);
  lines.push('');
  const doc = lines.join('\n');
  writeFileSync(out, doc);
  writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify({ machine, startedAt, rows: ROWS, clusters: CLUSTERS, seed: SEED, results }, null, 2));
  process.stdout.write(`${doc}\n`);
} finally {
  await ctx?.pool.close();
  try { dpgc(['--yes', 'lab', 'down']); } catch (e) { log(`lab down: ${e.message}`); }
  rmSync(dir, { recursive: true, force: true });
}
