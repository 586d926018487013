import { describe, expect, it } from 'vitest';
import { runChecks } from '../../src/checks/run.js';
import { schedule } from '../../src/checks/schedule.js';
import { isExclusive, pass, type Check } from '../../src/checks/types.js';
import type { RunContext } from '../../src/context.js';

/**
 * The scheduling of checks, on fake jobs with controlled durations: bounded
 * concurrency, exclusive jobs never together, results and reports in the
 * listed order whatever order the jobs finish in.
 */
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Job {
  name: string;
  ms: number;
  exclusive?: boolean;
}

/** Runs jobs and records, at every start, what else was running. */
async function trace(jobs: Job[], concurrency: number) {
  const running = new Set<string>();
  const overlaps: { name: string; with: string[] }[] = [];
  const started: string[] = [];
  let peak = 0;
  const reported: number[] = [];
  const results = await schedule(jobs, {
    concurrency,
    exclusive: (j) => Boolean(j.exclusive),
    run: async (j) => {
      overlaps.push({ name: j.name, with: [...running] });
      started.push(j.name);
      running.add(j.name);
      peak = Math.max(peak, running.size);
      await tick(j.ms);
      running.delete(j.name);
      return j.name;
    },
    onDone: (_, i) => reported.push(i),
  });
  return { results, overlaps, started, peak, reported };
}

describe('schedule', () => {
  it('never runs more than the concurrency at once, and does reach it', async () => {
    const jobs = Array.from({ length: 10 }, (_, i) => ({ name: `r${i}`, ms: 20 }));
    const t = await trace(jobs, 3);
    expect(t.peak).toBe(3);
    expect(t.results).toEqual(jobs.map((j) => j.name));
  });

  it('never runs two exclusive jobs together, but runs others beside them', async () => {
    const jobs: Job[] = [
      { name: 'load1', ms: 40, exclusive: true },
      { name: 'read1', ms: 10 },
      { name: 'load2', ms: 40, exclusive: true },
      { name: 'read2', ms: 10 },
      { name: 'load3', ms: 20, exclusive: true },
      { name: 'read3', ms: 10 },
    ];
    const t = await trace(jobs, 4);
    const loads = new Set(['load1', 'load2', 'load3']);
    for (const o of t.overlaps) if (loads.has(o.name)) expect(o.with.filter((w) => loads.has(w)), `${o.name} started beside`).toEqual([]);
    // The reads did not wait for the loads: they ran beside the first one.
    expect(t.overlaps.find((o) => o.name === 'read3')!.with).toContain('load1');
  });

  it('starts exclusive jobs first, in listed order, since they run one after another', async () => {
    const t = await trace(
      [
        { name: 'read1', ms: 5 },
        { name: 'load1', ms: 20, exclusive: true },
        { name: 'read2', ms: 5 },
        { name: 'load2', ms: 20, exclusive: true },
      ],
      2,
    );
    expect(t.started.slice(0, 2)).toEqual(['load1', 'read1']);
    expect(t.started.indexOf('load2')).toBeGreaterThan(t.started.indexOf('load1'));
  });

  it('returns and reports results in the listed order though they finish in another', async () => {
    const jobs = [
      { name: 'slow', ms: 60 },
      { name: 'fast', ms: 1 },
      { name: 'mid', ms: 20 },
    ];
    const t = await trace(jobs, 3);
    expect(t.results).toEqual(['slow', 'fast', 'mid']);
    expect(t.reported).toEqual([0, 1, 2]);
  });

  it('with concurrency 1 runs everything, one at a time', async () => {
    const t = await trace(
      [
        { name: 'a', ms: 1 },
        { name: 'b', ms: 1, exclusive: true },
      ],
      1,
    );
    expect(t.peak).toBe(1);
    expect(t.results).toEqual(['a', 'b']);
  });

  it('an empty list resolves at once; a job that throws rejects the run', async () => {
    expect(await schedule([], { concurrency: 4, exclusive: () => false, run: async () => 1 })).toEqual([]);
    await expect(schedule([1, 2], { concurrency: 2, exclusive: () => false, run: async (x) => (x === 2 ? Promise.reject(new Error('boom')) : x) })).rejects.toThrow('boom');
  });
});

describe('runChecks on the schedule', () => {
  const check = (id: string, kind: Check['kind'], ms: number, log: string[], exclusive?: boolean): Check => ({
    id,
    title: id,
    sprint: 0,
    kind,
    ...(exclusive === undefined ? {} : { exclusive }),
    run: async () => {
      log.push(`start ${id}`);
      await tick(ms);
      log.push(`end ${id}`);
      return pass();
    },
  });

  it('load checks, and reads marked exclusive, never overlap; outcomes keep the listed order with start times', async () => {
    const log: string[] = [];
    const checks = [check('state', 'state', 5, log), check('pool', 'load', 30, log), check('identical', 'read', 10, log, true), check('lag', 'load', 10, log), check('read', 'read', 5, log)];
    const reported: string[] = [];
    const out = await runChecks({} as RunContext, checks, { concurrency: 8, onResult: (o) => reported.push(o.id) });
    expect(out.map((o) => o.id)).toEqual(['state', 'pool', 'identical', 'lag', 'read']);
    expect(reported).toEqual(out.map((o) => o.id));
    const excl = new Set(checks.filter(isExclusive).map((c) => c.id));
    expect([...excl].sort()).toEqual(['identical', 'lag', 'pool']);
    let inside = 0;
    for (const l of log) {
      const [what, id] = l.split(' ') as [string, string];
      if (!excl.has(id)) continue;
      inside += what === 'start' ? 1 : -1;
      expect(inside).toBeLessThanOrEqual(1);
    }
    expect(out.every((o) => o.startedMs >= 0 && o.durationMs >= 0)).toBe(true);
    // The plain checks ran beside the first load check, not after all of them.
    expect(out.find((o) => o.id === 'read')!.startedMs).toBeLessThan(out.find((o) => o.id === 'pool')!.durationMs);
  });
});
