import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockedError } from '../../src/errors.js';
import { acquireRunLock, lockPathFor, processStartTime, staleReason, withRunLock } from '../../src/lock.js';
import type { Logger } from '../../src/output/log.js';

let dir: string;
let inv: string;
const warnings: string[] = [];
const logger: Logger = { info() {}, warn: (m) => warnings.push(m), error() {}, debug() {}, dry() {} };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-lock-'));
  inv = join(dir, 'dpgc.yaml');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function holder(pid: number, startTime: string | null, host = hostname()) {
  return JSON.stringify({ host, pid, command: 'dpgc sprint 1', since: '2026-01-01T00:00:00.000Z', startTime });
}

describe('one run at a time per cluster', () => {
  it('writes who holds it, and removes it on release', () => {
    const lock = acquireRunLock(inv, 'dpgc sprint 0', logger);
    const held = JSON.parse(readFileSync(lockPathFor(inv), 'utf8'));
    expect(held).toMatchObject({ host: hostname(), pid: process.pid, command: 'dpgc sprint 0', startTime: processStartTime(process.pid) });
    lock.release();
    expect(existsSync(lockPathFor(inv))).toBe(false);
  });

  it('is re-entrant within one process (`lab up` runs `up`), released by the outermost holder', async () => {
    await withRunLock(inv, 'dpgc lab up', logger, async () => {
      await withRunLock(inv, 'dpgc up', logger, async () => {});
      expect(existsSync(lockPathFor(inv))).toBe(true);
    });
    expect(existsSync(lockPathFor(inv))).toBe(false);
  });

  it('refuses while a live process holds it, naming host, pid, command and since when, exit 2, and leaves it alone', () => {
    // pid 1 is alive and is not us.
    writeFileSync(lockPathFor(inv), holder(1, processStartTime(1)));
    let err: unknown;
    try {
      acquireRunLock(inv, 'dpgc sprint 1', logger);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockedError);
    expect((err as LockedError).exitCode).toBe(2);
    expect((err as LockedError).message).toMatch(new RegExp(`another dpgc run is changing this cluster: pid 1 on ${hostname()}, running \`dpgc sprint 1\`, since 2026-01-01T00:00:00.000Z`));
    expect(readFileSync(lockPathFor(inv), 'utf8')).toBe(holder(1, processStartTime(1)));
  });

  it('takes over the lock of a process that is gone, and says so', async () => {
    const gone = (await execa('sh', ['-c', 'echo $$'])).stdout.trim();
    writeFileSync(lockPathFor(inv), holder(Number(gone), '1'));
    warnings.length = 0;
    const lock = acquireRunLock(inv, 'dpgc sprint 1', logger);
    expect(warnings.join('\n')).toMatch(new RegExp(`Took over a stale lock .*: pid ${gone} is not running`));
    expect(JSON.parse(readFileSync(lockPathFor(inv), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('takes over the lock of a pid now used by another process (other start time)', () => {
    const other = String(Number(processStartTime(1)) + 12_345);
    writeFileSync(lockPathFor(inv), holder(1, other));
    expect(staleReason({ host: hostname(), pid: 1, command: 'x', since: 'y', startTime: other })).toMatch(/now belongs to another process/);
    const lock = acquireRunLock(inv, 'dpgc sprint 1', logger);
    lock.release();
    expect(existsSync(lockPathFor(inv))).toBe(false);
  });

  it('never takes over a lock from another machine: it cannot tell whether that run is alive', () => {
    writeFileSync(lockPathFor(inv), holder(999_999, '1', 'other-machine'));
    expect(() => acquireRunLock(inv, 'dpgc sprint 1', logger)).toThrow(/pid 999999 on other-machine/);
  });
});
