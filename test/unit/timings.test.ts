import { describe, expect, it } from 'vitest';
import { TIMING_PROFILES, type Timings } from '../../src/config/schema.js';
import { etcdColocated, explainFailover, patroniEffectiveTimings, resolveTimings, validateTimings, worstCaseFailover } from '../../src/config/timings.js';
import { parseInventory } from '../../src/config/load.js';

const t = (over: Partial<Timings> = {}): Timings => ({ ...TIMING_PROFILES.balanced, rto_budget_s: 30, profile: 'custom', ...over });

describe('validateTimings', () => {
  it('accepts every built-in profile', () => {
    for (const p of Object.keys(TIMING_PROFILES) as (keyof typeof TIMING_PROFILES)[]) {
      expect(validateTimings(resolveTimings({ profile: p, rto_budget_s: 30 }))).toEqual([]);
    }
  });

  it("enforces Patroni's rule loop_wait + 2 × retry_timeout ≤ ttl, at the boundary, saying what Patroni would run", () => {
    expect(validateTimings(t({ ttl: 20, loop_wait: 2, retry_timeout: 9 }))).toEqual([]);
    const p = validateTimings(t({ ttl: 20, loop_wait: 3, retry_timeout: 9 }));
    expect(p).toHaveLength(1);
    expect(p[0]!.message).toBe(
      'loop_wait + 2 × retry_timeout = 3 + 2 × 9 = 21s exceeds ttl 20s: a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl, ' +
        'and Patroni would run with ttl 20, loop_wait 2, retry_timeout 9 instead, and failover would not take what dpgc computes); raise ttl or lower the others',
    );
  });

  it("rejects a ttl below Patroni's minimum, saying what Patroni would raise it to", () => {
    expect(validateTimings(t({ ttl: 20, loop_wait: 1, retry_timeout: 3 }))).toEqual([]);
    const p = validateTimings(t({ ttl: 10, loop_wait: 1, retry_timeout: 4 }));
    expect(p).toEqual([
      {
        field: 'ttl',
        message:
          "ttl 10s is below Patroni's minimum of 20s: Patroni would run with ttl 20, loop_wait 1, retry_timeout 4 instead, and failover would not take what dpgc computes; set timings.ttl to 20 or more",
      },
    ]);
  });

  it('rejects a retry_timeout that cannot ride out an etcd leader election, at the boundary', () => {
    expect(validateTimings(t({ ttl: 20, loop_wait: 1, retry_timeout: 3 }))).toEqual([]);
    const p = validateTimings(t({ ttl: 20, loop_wait: 1, retry_timeout: 2 }));
    expect(p.map((x) => x.field)).toEqual(['retry_timeout']);
    expect(p[0]!.message).toMatch(/^retry_timeout 2s is below 3s, Patroni's minimum .* would run with ttl 20, loop_wait 1, retry_timeout 3 instead/);
  });

  it('rejects an HAProxy check interval that floods the REST API', () => {
    expect(validateTimings(t({ check_inter_ms: 50 })).map((x) => x.field)).toEqual(['check_inter_ms']);
  });

  it('reaches the operator as a config error with the field path', () => {
    const yaml = 'cluster: c\ntimings:\n  ttl: 8\n  loop_wait: 2\n  retry_timeout: 4\nhosts:\n  - {name: db1, address: 10.0.0.1, roles: [postgres]}\n';
    const r = parseInventory(yaml, 'inv.yaml');
    expect(r.inventory).toBeUndefined();
    expect(r.issues[0]).toMatchObject({ file: 'inv.yaml', path: 'timings.ttl', line: 3 });
  });
});

describe('worstCaseFailover', () => {
  it('adds ttl, one HA loop, promotion and HAProxy rise × fastinter', () => {
    const b = worstCaseFailover(t({ ttl: 10, loop_wait: 1, retry_timeout: 4, check_inter_ms: 1000, check_rise: 1, check_fall: 2 }), { etcdColocated: false });
    // fastinter = inter / 4 = 250 ms; DOWN = inter + (fall - 1) × fastinter + check timeout (= inter).
    expect(b).toEqual({ detectionS: 10, etcdS: 0, loopS: 1, promotionS: 3, haproxyUpS: 0.25, haproxyDownS: 2.25, totalS: 14.25 });
    expect(explainFailover(b)).toBe('ttl 10 + loop_wait 1 + promotion 3 + HAProxy rise 0.25 = 14.25s');
  });

  it('adds an etcd election and lease extension when the primary host may also lead etcd (the default)', () => {
    const b = worstCaseFailover(t({ ttl: 10, loop_wait: 1, retry_timeout: 4, check_inter_ms: 1000, check_rise: 1, check_fall: 2 }));
    expect(b.etcdS).toBe(4);
    expect(b.totalS).toBe(18.25);
    expect(explainFailover(b)).toBe('ttl 10 + etcd leader loss 4 + loop_wait 1 + promotion 3 + HAProxy rise 0.25 = 18.25s');
    expect(etcdColocated({ hosts: [{ roles: ['postgres', 'etcd'] }] })).toBe(true);
    expect(etcdColocated({ hosts: [{ roles: ['postgres'] }, { roles: ['etcd'] }] })).toBe(false);
  });

  it('is bounded by marking the old primary DOWN when that is the slower path', () => {
    const b = worstCaseFailover(t({ ttl: 10, loop_wait: 1, retry_timeout: 4, check_inter_ms: 2000, check_rise: 1, check_fall: 5 }), { etcdColocated: false });
    expect(b.haproxyDownS).toBe(6);
    expect(b.totalS).toBe(16);
    expect(explainFailover(b)).toBe('ttl 10 + HAProxy fall 6 = 16s');
  });

  it('gives each profile a worst case within the default 30 s budget', () => {
    const got = Object.fromEntries(
      (Object.keys(TIMING_PROFILES) as (keyof typeof TIMING_PROFILES)[]).map((p) => [p, worstCaseFailover(resolveTimings({ profile: p, rto_budget_s: 30 })).totalS]),
    );
    expect(got).toEqual({ fast: 28.125, balanced: 28.25, safe: 30 });
  });

  it("shows that Patroni's defaults (30/10/10) do not fit a 30 s RTO", () => {
    expect(worstCaseFailover(t({ ttl: 30, loop_wait: 10, retry_timeout: 10, check_inter_ms: 2000, check_rise: 2, check_fall: 3 })).totalS).toBe(48);
  });
});

describe('patroniEffectiveTimings (mirrors Patroni 4.0 _validate_and_adjust_timeouts)', () => {
  it('raises each value to its minimum', () => {
    expect(patroniEffectiveTimings({ ttl: 10, loop_wait: 0, retry_timeout: 2 })).toEqual({ ttl: 20, loop_wait: 1, retry_timeout: 3 });
  });
  it('lowers loop_wait first, then retry_timeout, to keep loop_wait + 2 × retry_timeout ≤ ttl', () => {
    expect(patroniEffectiveTimings({ ttl: 20, loop_wait: 5, retry_timeout: 9 })).toEqual({ ttl: 20, loop_wait: 2, retry_timeout: 9 });
    expect(patroniEffectiveTimings({ ttl: 20, loop_wait: 5, retry_timeout: 12 })).toEqual({ ttl: 20, loop_wait: 1, retry_timeout: 9 });
  });
  it('leaves every built-in profile as it is', () => {
    for (const p of Object.values(TIMING_PROFILES)) expect(patroniEffectiveTimings(p)).toEqual({ ttl: p.ttl, loop_wait: p.loop_wait, retry_timeout: p.retry_timeout });
  });
});

describe('resolveTimings', () => {
  it('marks a profile with an explicit override as custom', () => {
    expect(resolveTimings({ profile: 'fast', rto_budget_s: 40, ttl: 25 })).toEqual({ ...TIMING_PROFILES.fast, ttl: 25, rto_budget_s: 40, profile: 'custom' });
    expect(resolveTimings({ profile: 'safe', rto_budget_s: 30 }).profile).toBe('safe');
  });
});
