import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadState, readState, recordSprint, type SprintRecord } from '../../src/state.js';

/** The state file is an input like any other (issue 10, #6): validated, and a bad one is reported and ignored. */

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-state-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const fresh = () => join(dir, `s${++n}.state.json`);

const REC: SprintRecord = { at: '2026-12-02T04:00:00.000Z', inventoryHash: '0123456789abcdef', passed: true, results: [{ id: 's0.pg.reachable', verdict: 'pass', value: '1 ms' }] };

describe('the state file', () => {
  it('absent: no record, and nothing to say', async () => {
    expect(await loadState(fresh())).toEqual({ state: { sprints: {} } });
  });

  it('a good one reads back as written', async () => {
    const f = fresh();
    await recordSprint(f, 0, REC);
    await recordSprint(f, 1, { ...REC, passed: false, forced: { failing: ['s0.x: y'] } });
    expect(await loadState(f)).toEqual({ state: { sprints: { '0': REC, '1': { ...REC, passed: false, forced: { failing: ['s0.x: y'] } } } } });
  });

  it.each([
    ['null', 'is not a dpgc state file (Invalid input: expected object, received null)'],
    ['[]', 'is not a dpgc state file (Invalid input: expected object, received array)'],
    ['{"sprints":null}', 'is not a dpgc state file (sprints: Invalid input: expected record, received null)'],
    ['{"sprints":{"abc":{}}}', 'is not a dpgc state file (sprints.abc: "abc" is not a sprint number (0 to 5))'],
    ['{"sprints":{"3":{}}}', 'is not a dpgc state file (sprints["3"].at: Invalid input: expected string, received undefined)'],
    ['{"sprints":', 'is not JSON (Unexpected end of JSON input)'],
  ])('%s is reported, by file and what is wrong, and treated as no record', async (text, problem) => {
    const f = fresh();
    await writeFile(f, text);
    expect(await loadState(f)).toEqual({ state: { sprints: {} }, problem });
    const warnings: string[] = [];
    expect(await readState(f, (m) => warnings.push(m))).toEqual({ sprints: {} });
    expect(warnings).toEqual([`state file ${f} ${problem}; ignoring it (dpgc measures the live cluster instead, and the next sprint run writes a new one)`]);
    // Said once per run, however many modules read it.
    await readState(f, (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
  });

  it('a directory in its place is reported, not a crash', async () => {
    const f = fresh();
    await (await import('node:fs/promises')).mkdir(f);
    expect((await loadState(f)).problem).toBe('cannot be read (EISDIR)');
  });

  it('the next sprint replaces a corrupt file with a valid one', async () => {
    const f = fresh();
    await writeFile(f, '{"sprints":{"abc":{}}}');
    await recordSprint(f, 0, REC, () => {});
    expect(JSON.parse(await readFile(f, 'utf8'))).toEqual({ sprints: { '0': REC } });
  });
});
