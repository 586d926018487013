#!/usr/bin/env node
// RTO distribution per drill mode and timing profile, on a fresh lab per profile.
//
//   npm run build && node bench/failover/run.mjs [--profiles fast,balanced,safe] [--modes switchover,kill,...] [--repeat 5] [--subnet 127.0.40]
//   node bench/failover/run.mjs --report-only
//
// Only the built CLI is used, exactly as an operator would: `dpgc lab init`,
// `dpgc up`, `dpgc failover-test --repeat N --json`, `dpgc lab down`. Each
// run's JSON is kept under results/, and RESULTS.md is rewritten from every
// JSON file present (so profiles can be run one at a time).
import { execFile } from 'node:child_process';
import { appendFile, chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = fileURLToPath(new URL('../../bin/dpgc.js', import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const profiles = (args.profiles ?? 'fast,balanced,safe').split(',');
const modes = (args.modes ?? 'switchover,kill,crash,stop,etcd-member,replica,partition,freeze').split(',');
const repeat = Number(args.repeat ?? 5);
const subnet = args.subnet ?? '127.0.40';

function dpgc(argv, timeoutMs = 3_600_000) {
  return new Promise((resolve) => {
    const started = Date.now();
    execFile('node', [bin, ...argv], { env: { ...process.env, CI: 'true', NO_COLOR: '1' }, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr, seconds: (Date.now() - started) / 1000 });
    });
  });
}

await mkdir(join(here, 'results'), { recursive: true });
// The Patroni that ran the drills: its failover behaviour is the subject (3.0.2 lost writes, patroni/patroni#2689).
const patroni = await new Promise((resolve) => execFile('patroni', ['--version'], (err, stdout) => resolve(err ? 'unknown' : stdout.trim())));
const { summarizeDrills } = await import('../../dist/src/drills/report.js');
// A drill that leaves the cluster broken (see FINDINGS.md, freeze) must not
// cost the other modes their drills: the lab is rebuilt, and the mode goes on
// until it has `repeat` drills, at most this many invocations.
const MAX_INVOCATIONS = 3;

// --report-only: rewrite RESULTS.md from the JSON already under results/.
for (const profile of 'report-only' in args ? [] : profiles) {
  const dir = await mkdtemp(`/tmp/dpgc-bench-${profile}-`);
  // Daemons run as their own users and must be able to reach their directories under it.
  await chmod(dir, 0o755);
  const config = join(dir, 'dpgc.yaml');
  const c = ['-c', config];
  const up = async () => {
    process.stderr.write(`[${profile}] dpgc up …\n`);
    const r = await dpgc([...c, '--yes', 'up']);
    if (r.code !== 0) throw new Error(`dpgc up (${profile}) failed:\n${r.stderr.slice(-4000)}`);
    process.stderr.write(`[${profile}] cluster up in ${r.seconds.toFixed(0)} s\n`);
  };
  try {
    const r = await dpgc([...c, 'lab', 'init', '--subnet', subnet, '--dir', join(dir, 'lab')]);
    if (r.code !== 0) throw new Error(`lab init: ${r.stderr}`);
    await appendFile(config, `timings:\n  profile: ${profile}\n`);
    await up();
    for (const mode of modes) {
      const drills = [];
      const runs = [];
      let doc = {};
      // Written after every invocation, so a bench that dies keeps what it measured.
      const save = async () => {
        const out = { ...doc, mode, summary: drills.length ? summarizeDrills(drills) : null, passed: drills.length === repeat && drills.every((d) => d.passed), drills };
        out.bench = { profile, mode, repeat, runs, patroni, at: new Date().toISOString() };
        await writeFile(join(here, 'results', `${profile}-${mode}.json`), `${JSON.stringify(out, null, 2)}\n`);
      };
      for (let attempt = 1; drills.length < repeat && attempt <= MAX_INVOCATIONS; attempt++) {
        const want = repeat - drills.length;
        process.stderr.write(`[${profile}] ${want} × ${mode} …\n`);
        const loadBefore = loadavg()[0];
        const r = await dpgc([...c, '--json', 'failover-test', '--mode', mode, '--repeat', String(want)]);
        let out;
        try {
          out = JSON.parse(r.stdout);
        } catch {
          out = { error: { message: r.stderr.slice(-4000) } };
        }
        const got = out.drills ?? [];
        drills.push(...got);
        if (out.budget) doc = { ...out, drills: undefined, summary: undefined };
        runs.push({ exitCode: r.code, drills: got.length, wallSeconds: r.seconds, load1Before: loadBefore, load1After: loadavg()[0], error: got.length < want ? (out.error?.message ?? r.stderr.slice(-2000)) : undefined });
        process.stderr.write(`[${profile}] ${mode}: ${got.length} drills, exit ${r.code} in ${r.seconds.toFixed(0)} s\n`);
        await save();
        // A failed drill: keep the lab's logs (outside the repository: they are data, not results).
        // Fewer drills than asked: the cluster was left unhealthy (or refused); start over from bare hosts.
        if (got.length < want || got.some((d) => !d.passed)) {
          const logs = join(tmpdir(), 'dpgc-bench-logs', `${profile}-${mode}-${attempt}`);
          await mkdir(logs, { recursive: true });
          await writeFile(join(logs, 'dpgc.stderr.log'), r.stderr);
          await cp(join(dir, 'lab'), join(logs, 'lab'), { recursive: true, filter: (src) => !/\/(data|pgdata|lib|wal)(\/|$)/.test(src) }).catch(() => {});
          process.stderr.write(`[${profile}] ${mode}: logs kept in ${logs}\n`);
        }
        if (got.length < want) {
          await dpgc([...c, '--yes', 'lab', 'down']);
          await up();
        }
      }
    }
  } finally {
    await dpgc([...c, '--yes', 'lab', 'down']);
    await rm(dir, { recursive: true, force: true });
  }
}
await writeReport();

async function writeReport() {
  const files = (await readdir(join(here, 'results'))).filter((f) => f.endsWith('.json')).sort();
  const docs = await Promise.all(files.map(async (f) => JSON.parse(await readFile(join(here, 'results', f), 'utf8'))));
  const order = { fast: 0, balanced: 1, safe: 2 };
  const modeOrder = ['switchover', 'kill', 'crash', 'stop', 'etcd-member', 'replica', 'partition', 'freeze'];
  docs.sort((a, b) => modeOrder.indexOf(a.bench.mode) - modeOrder.indexOf(b.bench.mode) || (order[a.bench.profile] ?? 9) - (order[b.bench.profile] ?? 9));
  const f = (v) => (v === null || v === undefined ? '—' : Number.isInteger(v) ? String(v) : v.toFixed(2));
  // Distinct acknowledged rows missing on at least one node (a row missing on two nodes is one lost write).
  const lost = (d) => (d.drills ?? []).reduce((n, x) => n + x.writes.lost, 0);
  const lines = [
    '# Failover drills: RTO distribution per mode and timing profile',
    '',
    'Generated by `node bench/failover/run.mjs` (see the script header). Every profile ran on its own fresh lab cluster on one machine',
    `(${cpus().length} cores, kernel ${release()}), ${[...new Set(docs.map((d) => d.bench.patroni ?? 'Patroni version not recorded'))].join(', ')}, 4 writers through PgBouncer → HAProxy → primary, 2 readers through HAProxy's replica port.`,
    'The 1-minute load average before and after each invocation is in each section: with 2 cores, a load above 2 means the drill competed for CPU.',
    '',
    '## Method',
    '',
    ...((docs.find((d) => d.method)?.method ?? []).map((m) => `- ${m}`)),
    '- each drill is judged against RPO = 0 (no acknowledged write missing on any node) and the inventory RTO budget; the tables give min / median / p95 / max over the drills of one mode and profile',
    '- a mode whose drill left the cluster unhealthy is continued on a rebuilt cluster until it has its drills (the invocations are listed per section)',
    '- outage figures cover the drills whose writes recovered; a drill whose writes never came back has no outage figure and counts as failed in "drills passed"',
    '',
    '## Summary: client write outage (s)',
    '',
    '| mode | profile | drills passed | min | median | p95 | max | computed worst case | lost acknowledged writes |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const d of docs) {
    const o = d.summary?.outageS;
    lines.push(`| ${d.bench.mode} | ${d.bench.profile} | ${(d.drills ?? []).filter((x) => x.passed).length}/${(d.drills ?? []).length} | ${f(o?.min)} | ${f(o?.median)} | ${f(o?.p95)} | ${f(o?.max)} | ${f(d.budget?.worstCaseS)} | ${lost(d)} |`);
  }
  const get = (mode, profile) => docs.find((d) => d.bench.mode === mode && d.bench.profile === profile);
  const kill = get('kill', 'balanced');
  const sw = get('switchover', 'balanced');
  const all = docs.flatMap((d) => d.drills ?? []);
  const verdict = (ok) => (ok ? 'met' : '**not met**');
  lines.push('', '## Against the targets (default profile `balanced`)', '', '| target | measured | |', '|---|---|---|');
  if (kill?.summary) lines.push(`| kill (host death) RTO p95 ≤ the computed worst case (${f(kill.budget?.worstCaseS)} s) | ${f(kill.summary.outageS.p95)} s (${kill.drills.length} drills) | ${verdict(kill.summary.outageS.p95 <= kill.budget?.worstCaseS)} |`);
  const crash = get('crash', 'balanced');
  if (crash?.summary) lines.push(`| crash (Patroni + PostgreSQL killed on a live host) RTO p95 < ttl, no failover | ${f(crash.summary.outageS.p95)} s, leader kept in ${crash.drills.filter((x) => x.newLeader === x.oldLeader).length}/${crash.drills.length} | ${verdict(crash.summary.outageS.p95 < crash.drills[0].timings.ttl && crash.drills.every((x) => x.newLeader === x.oldLeader))} |`);
  if (sw?.summary) lines.push(`| switchover write outage p50 ≤ 2 s | ${f(sw.summary.outageS.median)} s (${sw.drills.length} drills) | ${verdict(sw.summary.outageS.median <= 2)} |`);
  const lostAll = docs.reduce((n, d) => n + lost(d), 0);
  const byMode = new Map();
  for (const d of docs) byMode.set(d.bench.mode, { lost: (byMode.get(d.bench.mode)?.lost ?? 0) + lost(d), drills: (byMode.get(d.bench.mode)?.drills ?? 0) + (d.drills?.length ?? 0) });
  const losing = [...byMode].filter(([, v]) => v.lost > 0);
  const clean = [...byMode].filter(([, v]) => v.lost === 0);
  const where = losing.length
    ? `: ${losing.map(([m, v]) => `${m} ${v.lost} (${v.drills} drills)`).join(', ')}; 0 in the ${clean.reduce((n, [, v]) => n + v.drills, 0)} drills of ${clean.map(([m]) => m).join(', ')}`
    : '';
  lines.push(`| zero lost acknowledged writes, every drill | ${lostAll} lost in ${all.length} drills${where} | ${verdict(lostAll === 0)} |`, '');
  for (const d of docs) {
    const b = d.bench;
    lines.push(`## ${b.mode}, profile \`${b.profile}\``, '');
    const runs = (b.runs ?? []).map((r, i) => `invocation ${i + 1}: ${r.drills} drills, exit ${r.exitCode}, ${f(r.wallSeconds)} s, load ${f(r.load1Before)} → ${f(r.load1After)}${r.note ? ` (${r.note})` : ''}${r.error ? ` — ${r.error.split('\n')[0].slice(0, 300)}` : ''}`);
    if (!d.drills?.length) {
      lines.push('No drill completed:', '', ...runs.map((r) => `- ${r}`), '');
      continue;
    }
    const t = d.drills[0].timings;
    lines.push(
      `${b.patroni ?? 'Patroni version not recorded'}; ttl ${t.ttl} s, loop_wait ${t.loop_wait} s, retry_timeout ${t.retry_timeout} s (as Patroni applies them: dpgc refuses values below its minimums), HAProxy inter ${t.check_inter_ms} ms fall ${t.check_fall} rise ${t.check_rise}; computed worst case ${d.budget?.worstCaseS} s, budget ${d.budget?.rtoS} s${d.drills[0].stallS ? `; the victim stalled ${d.drills[0].stallS} s` : ''}.`,
      `${d.drills.length} drills, ${d.drills.filter((x) => x.passed).length} passed; ${b.at}.`,
      ...runs.map((r) => `- ${r}`),
      '',
      '| figure (s after the fault, or count) | min | median | p95 | max |',
      '|---|---|---|---|---|',
    );
    for (const [k, s] of Object.entries(d.summary ?? {})) if (s) lines.push(`| ${k} | ${f(s.min)} | ${f(s.median)} | ${f(s.p95)} | ${f(s.max)} |`);
    lines.push('', `Write outage per drill (s): ${d.drills.map((x) => f(x.outage.seconds)).join(', ')}.`);
    const failed = d.drills.flatMap((x, i) => x.criteria.filter((c) => !c.ok).map((c) => `drill ${i + 1}: ${c.id}: ${c.detail}`));
    if (failed.length) lines.push('', 'Failed criteria:', '', ...failed.map((x) => `- ${x}`));
    const notes = [...new Set(d.drills.flatMap((x) => [...x.notes, ...(x.repair ? [`repair: ${x.repair}`] : [])]))];
    if (notes.length) lines.push('', 'Notes from the drills:', '', ...notes.map((x) => `- ${x}`));
    lines.push('');
  }
  // Observations written by hand (what the numbers do not say) live beside the script and are appended.
  const notes = await readFile(join(here, 'FINDINGS.md'), 'utf8').catch(() => '');
  await writeFile(join(here, 'RESULTS.md'), `${lines.join('\n')}\n${notes ? `\n${notes}` : ''}`);
  process.stderr.write(`wrote ${join(here, 'RESULTS.md')}\n`);
}
