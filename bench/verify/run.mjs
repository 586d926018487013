#!/usr/bin/env node
// How long an operator waits: `dpgc up` (sprints 0-3) on a fresh lab, then
// `dpgc verify --all`, `dpgc verify --quick` and `dpgc --help` on that lab.
//
//   npm run build && ip netns exec <ns> node bench/verify/run.mjs [--subnet 127.0.150] [--repeat 3] [--bin path/to/bin/dpgc.js] [--keep]
//
// Only the built CLI is used, as an operator would. The phases of `dpgc up`
// (re-verification of the previous sprint, tasks, the sprint's own criteria)
// are timed from the moment each of its progress lines arrives on stderr, so
// the same script measures a dpgc that does not report them itself (--bin
// pointing at an older build gives the "before" column). Output: a Markdown
// report on stdout, every raw figure as JSON in --out (default: stdout only).
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]?.startsWith('--') ? 'true' : (all[i + 1] ?? 'true')]] : acc), []));
const bin = args.bin ?? fileURLToPath(new URL('../../bin/dpgc.js', import.meta.url));
const subnet = args.subnet ?? '127.0.150';
const repeat = Number(args.repeat ?? 3);
const env = { ...process.env, CI: 'true', NO_COLOR: '1' };

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const sh = (cmd, argv) => new Promise((res) => execFile(cmd, argv, (err, stdout) => res(err ? 'unknown' : stdout.trim())));

/** Runs the CLI; `lines` gets each stderr line with the seconds since start at which it arrived. */
function dpgc(argv) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn('node', [bin, ...argv], { env });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const lines = [];
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      const t = (performance.now() - started) / 1000;
      stderr += d;
      const parts = (partial + d).split('\n');
      partial = parts.pop();
      for (const l of parts) lines.push({ t, l });
    });
    child.on('close', (code) => resolve({ code, stdout, stderr, lines, seconds: (performance.now() - started) / 1000 }));
  });
}

/** Sprint phases from `dpgc up`'s progress lines: gate (re-verify N-1), tasks, criteria. */
function phases(lines, total) {
  const marks = [];
  for (const { t, l } of lines) {
    let m;
    if ((m = /^Re-verifying sprint (\d+)/.exec(l))) marks.push({ t, sprint: Number(m[1]) + 1, phase: 'gate' });
    else if ((m = /^Sprint (\d+): /.exec(l))) marks.push({ t, sprint: Number(m[1]), phase: 'tasks' });
    else if ((m = /^Measuring sprint (\d+)'s success criteria/.exec(l))) marks.push({ t, sprint: Number(m[1]), phase: 'criteria' });
  }
  const out = {};
  marks.forEach((mk, i) => {
    const end = marks[i + 1]?.t ?? total;
    out[mk.sprint] ??= { gate: 0, tasks: 0, criteria: 0 };
    out[mk.sprint][mk.phase] += end - mk.t;
  });
  // Up to the first mark: loading the inventory, secrets, lock.
  return { startup: marks[0]?.t ?? 0, sprints: out };
}

const method = {
  date: new Date().toISOString(),
  machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}`,
  node: process.version,
  patroni: await sh('patroni', ['--version']),
  dpgc: bin,
  loadBefore: load(),
};

const dir = await mkdtemp('/tmp/dpgc-bench-verify-');
await chmod(dir, 0o755);
const config = join(dir, 'dpgc.yaml');
const c = ['-c', config];
const result = { method, up: undefined, verify: {}, help: {} };
try {
  const init = await dpgc([...c, 'lab', 'init', '--subnet', subnet, '--dir', join(dir, 'lab')]);
  if (init.code !== 0) throw new Error(`lab init: ${init.stderr}`);
  const profile = /profile:\s*(\w+)/.exec(await sh('cat', [config]))?.[1] ?? 'balanced (default)';
  method.profile = profile;
  process.stderr.write(`dpgc up on ${subnet}.x (load ${load()}) …\n`);
  const loadUp = load();
  const up = await dpgc([...c, '--yes', 'up']);
  if (up.code !== 0) throw new Error(`dpgc up failed:\n${up.stderr.slice(-4000)}`);
  result.up = { seconds: up.seconds, loadBefore: loadUp, loadAfter: load(), ...phases(up.lines, up.seconds) };
  process.stderr.write(`up: ${up.seconds.toFixed(1)} s\n`);
  // Listr's per-task durations are in this log: where `up` spends its time, task by task.
  if (args.out) await writeFile(`${args.out.replace(/\.json$/, '')}.up.log`, up.stderr);

  for (const mode of ['--all', '--quick']) {
    const runs = [];
    for (let i = 0; i < repeat; i++) {
      const l0 = load();
      const r = await dpgc([...c, '--json', 'verify', mode]);
      if (r.code !== 0 && mode === '--quick' && /unknown option/.test(r.stderr)) break;
      let doc;
      try {
        doc = JSON.parse(r.stdout);
      } catch {
        doc = undefined;
      }
      runs.push({ seconds: r.seconds, code: r.code, load: l0, checks: doc?.results?.map((x) => ({ id: x.id, verdict: x.verdict, ms: x.durationMs, startedMs: x.startedMs, ...(x.verdict === 'pass' ? {} : { detail: x.detail }) })) ?? [] });
      process.stderr.write(`verify ${mode}: ${r.seconds.toFixed(2)} s, exit ${r.code}\n`);
    }
    result.verify[mode] = runs;
  }

  const timeN = async (cmd, argv, n = 10) => {
    const xs = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await new Promise((res) => execFile(cmd, argv, { env }, () => res()));
      xs.push((performance.now() - t0) / 1000);
    }
    return median(xs);
  };
  result.help = { load: load(), dpgcHelp: await timeN('node', [bin, '--help']), nodeE0: await timeN('node', ['-e', '0']) };
} finally {
  method.loadAfter = load();
  if (!('keep' in args)) {
    await dpgc([...c, '--yes', 'lab', 'down']);
    await rm(dir, { recursive: true, force: true });
  } else process.stderr.write(`lab kept: ${config}\n`);
}

// The report.
const f = (x) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(1));
const out = [];
out.push(`Method: ${method.machine}; Node ${method.node}; ${method.patroni}; timing profile ${method.profile}; ${method.date}.`);
out.push(`Load average (1/5/15 min): ${method.loadBefore} at start, ${result.up.loadBefore} before up, ${method.loadAfter} at the end.`);
out.push('', `dpgc up (sprints 0-3): ${f(result.up.seconds)} s (startup ${f(result.up.startup)} s)`, '', '| sprint | gate (re-verify N-1) s | tasks s | criteria s | total s |', '|---|---|---|---|---|');
for (const [s, p] of Object.entries(result.up.sprints)) out.push(`| ${s} | ${f(p.gate)} | ${f(p.tasks)} | ${f(p.criteria)} | ${f(p.gate + p.tasks + p.criteria)} |`);
for (const [mode, runs] of Object.entries(result.verify)) {
  if (!runs.length) {
    out.push('', `verify ${mode}: not supported by this build`);
    continue;
  }
  out.push('', `verify ${mode}: ${runs.map((r) => `${r.seconds.toFixed(2)} s (exit ${r.code}, load ${r.load.split(' ')[0]})`).join(', ')}; median ${median(runs.map((r) => r.seconds)).toFixed(2)} s, ${runs[0].checks.length} checks`);
  out.push('', '| check | verdict | median ms |', '|---|---|---|');
  for (const ch of runs[0].checks) out.push(`| ${ch.id} | ${ch.verdict} | ${median(runs.map((r) => r.checks.find((x) => x.id === ch.id)?.ms ?? NaN)).toFixed(0)} |`);
}
out.push('', `dpgc --help: ${(result.help.dpgcHelp * 1000).toFixed(0)} ms vs node -e 0: ${(result.help.nodeE0 * 1000).toFixed(0)} ms (median of 10; ratio ${(result.help.dpgcHelp / result.help.nodeE0).toFixed(2)}×, load ${result.help.load})`);
process.stdout.write(out.join('\n') + '\n');
if (args.out) await writeFile(args.out, JSON.stringify(result, null, 2));
