import { describe, expect, it } from 'vitest';
import { HostError } from '../../src/errors.js';
import { becomes, waitUntil, WaitTimeout } from '../../src/wait.js';

describe('waitUntil', () => {
  it('returns the first value the condition yields', async () => {
    let n = 0;
    await expect(waitUntil(async () => (++n >= 3 ? `after ${n}` : undefined), { timeoutMs: 1000, everyMs: 1 }, 'three looks')).resolves.toBe('after 3');
  });

  it('names what it waited for and the last observation when time runs out', async () => {
    const e = await waitUntil(
      (seen) => {
        seen('leader db1, no sync standby');
        return false;
      },
      { timeoutMs: 20, everyMs: 5 },
      'a synchronous standby',
    ).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(WaitTimeout);
    expect(e).toBeInstanceOf(HostError);
    expect((e as WaitTimeout).message).toBe('a synchronous standby did not happen within 0.02s: leader db1, no sync standby');
    expect((e as WaitTimeout).waitedFor).toBe('a synchronous standby');
    expect((e as WaitTimeout).lastSeen).toBe('leader db1, no sync standby');
  });

  it('ends at once on an error, unless told errors mean "not yet"', async () => {
    let n = 0;
    const boom = async () => {
      n++;
      throw new Error('connection refused');
    };
    await expect(waitUntil(boom, { timeoutMs: 1000, everyMs: 1 }, 'x')).rejects.toThrow('connection refused');
    expect(n).toBe(1);
    await expect(waitUntil(boom, { timeoutMs: 20, everyMs: 5, retryErrors: true }, 'Patroni leading')).rejects.toThrow('Patroni leading did not happen within 0.02s: connection refused');
    expect(n).toBeGreaterThan(2);
  });

  it("throws the caller's own error on timeout", async () => {
    await expect(waitUntil(() => undefined, { timeoutMs: 5, everyMs: 1, timeoutError: async (t) => new Error(`mine (${t.waitedFor})`) }, 'it')).rejects.toThrow('mine (it)');
  });

  it('becomes: true in time, false after the deadline', async () => {
    await expect(becomes(() => true, { timeoutMs: 5, everyMs: 1 }, 'yes')).resolves.toBe(true);
    await expect(becomes(() => false, { timeoutMs: 5, everyMs: 1 }, 'no')).resolves.toBe(false);
  });
});
