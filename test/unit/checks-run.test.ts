import { describe, expect, it } from 'vitest';
import { allRequiredPass, formatOutcome, runChecks, toJUnit } from '../../src/checks/run.js';
import { fail, pass, type Check, type CheckOutcome } from '../../src/checks/types.js';
import type { RunContext } from '../../src/context.js';
import { HostError } from '../../src/errors.js';

const ctx = {} as RunContext;
const check = (id: string, run: Check['run'], required = true): Check => ({ id, title: `check ${id}`, sprint: 0, required, kind: 'state', run });

describe('runChecks', () => {
  it('keeps order, times each check, and turns a thrown error into a failure with its hint', async () => {
    const out = await runChecks(ctx, [
      check('a', async () => pass('1 ms', '< 5 ms')),
      check('b', async () => {
        throw new HostError('db1: refused', { hint: 'start it' });
      }),
    ]);
    expect(out.map((o) => [o.id, o.verdict])).toEqual([
      ['a', 'pass'],
      ['b', 'fail'],
    ]);
    expect(out[1]).toMatchObject({ detail: 'db1: refused', remedy: 'start it', required: true });
    expect(allRequiredPass(out)).toBe(false);
  });

  it('an optional failure does not fail the run', async () => {
    const out = await runChecks(ctx, [check('a', async () => pass()), check('b', async () => fail('meh'), false)]);
    expect(allRequiredPass(out)).toBe(true);
    expect(formatOutcome(out[1]!)).toContain('[optional]');
  });
});

describe('toJUnit', () => {
  it('writes one suite per sprint with failures carrying the detail', () => {
    const rs: CheckOutcome[] = [
      { id: 's0.a', title: 'A & B', sprint: 0, required: true, kind: 'state', startedMs: 0, durationMs: 1200, verdict: 'pass', value: 3 },
      { id: 's1.b', title: 'C', sprint: 1, required: true, kind: 'load', startedMs: 5, durationMs: 10, verdict: 'fail', detail: 'x < y' },
    ];
    expect(toJUnit(rs)).toMatchSnapshot();
  });
});
