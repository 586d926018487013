import { describe, expect, it } from 'vitest';
import { TIMING_PROFILES, type Timings } from '../../src/config/schema.js';
import { etcdColocated, explainFailover, resolveTimings, validateTimings, worstCaseFailover } from '../../src/config/timings.js';
import { parseInventory } from '../../src/config/load.js';

const t = (over: Partial<Timings> = {}): Timings => ({ ...TIMING_PROFILES.balanced, rto_budget_s: 30, profile: 'custom', ...over });

describe('validateTimings', () => {
  it('accepts every built-in profile', () => {
    for (const p of Object.keys(TIMING_PROFILES) as (keyof typeof TIMING_PROFILES)[]) {
      expect(validateTimings(resolveTimings({ profile: p, rto_budget_s: 30 }))).toEqual([]);
    }
  });

  it("enforces Patroni's rule loop_wait + 2 × retry_timeout ≤ ttl, at the boundary", () => {
    expect(validateTimings(t({ ttl: 10, loop_wait: 2, retry_timeout: 4 }))).toEqual([]);
    const p = validateTimings(t({ ttl: 10, loop_wait: 3, retry_timeout: 4 }));
    expect(p).toHaveLength(1);
    expect(p[0]!.message).toBe(
      'loop_wait + 2 × retry_timeout = 3 + 2 × 4 = 11s exceeds ttl 10s: a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl); raise ttl or lower the others',
    );
  });

  it('rejects a ttl that makes the leader demote itself (LAB.md: 2–3 s)', () => {
    const p = validateTimings(t({ ttl: 3, loop_wait: 1, retry_timeout: 1 }));
    expect(p.map((x) => x.field)).toContain('ttl');
    expect(p.find((x) => x.message.startsWith('ttl 3s'))?.message).toBe('ttl 3s is below 5s: the leader cannot renew its lock in time and demotes itself in a loop; set timings.ttl to 5 or more');
  });

  it('rejects a retry_timeout that cannot ride out an etcd leader election, at the boundary', () => {
    expect(validateTimings(t({ ttl: 10, loop_wait: 1, retry_timeout: 3 }))).toEqual([]);
    const p = validateTimings(t({ ttl: 10, loop_wait: 1, retry_timeout: 2 }));
    expect(p).toEqual([
      {
        field: 'retry_timeout',
        message: 'retry_timeout 2s is shorter than an etcd leader election (up to 2s, plus a margin): losing the etcd leader would demote the primary; use at least 3s',
      },
    ]);
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
    expect(got).toEqual({ fast: 15.125, balanced: 18.25, safe: 30 });
  });

  it("shows that Patroni's defaults (30/10/10) do not fit a 30 s RTO", () => {
    expect(worstCaseFailover(t({ ttl: 30, loop_wait: 10, retry_timeout: 10, check_inter_ms: 2000, check_rise: 2, check_fall: 3 })).totalS).toBe(48);
  });
});

describe('resolveTimings', () => {
  it('marks a profile with an explicit override as custom', () => {
    expect(resolveTimings({ profile: 'fast', rto_budget_s: 20, ttl: 6 })).toEqual({ ...TIMING_PROFILES.fast, ttl: 6, rto_budget_s: 20, profile: 'custom' });
    expect(resolveTimings({ profile: 'safe', rto_budget_s: 30 }).profile).toBe('safe');
  });
});
