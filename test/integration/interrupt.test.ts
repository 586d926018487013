import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { statePathFor } from '../../src/state.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * Ctrl-C in the middle of a sprint, as an operator presses it: the run stops
 * at the next step boundary with exit code 130 and says so, nothing is left
 * half-written, and running the sprint again finishes the job. Subnet 127.0.80.
 */

let lab: TestLab;
beforeAll(async () => {
  lab = await createLab('127.0.80');
}, 60_000);
afterAll(async () => {
  await lab?.down();
}, 120_000);

/** Processes whose command line names the lab's directory: what `lab down` must leave none of. */
async function labProcesses(): Promise<string[]> {
  const r = await execa('ps', ['-eo', 'pid=,args='], { reject: false });
  return String(r.stdout)
    .split('\n')
    .filter((l) => l.includes(lab.dir) && !l.includes('ps -eo'));
}

describe('Ctrl-C during `dpgc sprint 0`', () => {
  let first: { code: number; stderr: string; afterSigintS: number };

  beforeAll(async () => {
    const child = execa('node', [BIN, '-c', lab.config, 'sprint', '0'], { reject: false, env: { CI: 'true', NO_COLOR: '1' }, stdin: 'ignore', timeout: 300_000 });
    let stderr = '';
    let sentAt = 0;
    // Press Ctrl-C once the first step has finished, so the run is truly mid-sprint.
    child.stderr?.on('data', (b: Buffer) => {
      stderr += String(b);
      if (!sentAt && /✔ .*\[\d/.test(stderr)) {
        sentAt = Date.now();
        child.kill('SIGINT');
      }
    });
    const r = await child;
    first = { code: r.exitCode ?? -1, stderr, afterSigintS: sentAt ? (Date.now() - sentAt) / 1000 : Number.NaN };
  }, 320_000);

  it('stops at the next step boundary with exit code 130 and says how to resume, without a stack trace', () => {
    expect(first.afterSigintS).toBeGreaterThan(0);
    expect(first.code).toBe(130);
    expect(first.stderr).toContain('Interrupted: finishing the current step, then stopping.');
    expect(first.stderr).toContain('interrupted; every completed step is kept, and re-running resumes from here');
    expect(first.stderr).not.toContain('    at ');
  });

  it('running the sprint again completes it, and every criterion passes', async () => {
    const r = await lab.cli(['sprint', '0'], { timeoutMs: 300_000 });
    expect(r.stderr).toContain('PASS');
    expect(r.code).toBe(0);
  }, 320_000);

  it('`dpgc lab down` then leaves no process of the lab running', async () => {
    expect((await labProcesses()).length).toBeGreaterThan(0);
    expect(existsSync(statePathFor(lab.config))).toBe(true);
    const r = await lab.cli(['--yes', 'lab', 'down']);
    expect(r.code).toBe(0);
    expect(await labProcesses()).toEqual([]);
    // The record of passed sprints went with the hosts: the next `dpgc up` starts from sprint 0.
    expect(existsSync(statePathFor(lab.config))).toBe(false);
  }, 120_000);
});
