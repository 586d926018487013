import type { Inventory } from '../config/schema.js';
import type { CheckOutcome } from './types.js';

/**
 * Readiness verdicts: a failing item an operator accepted in the inventory
 * (`readiness.waivers`: id, reason, expiry date) is WAIVED, with the reason
 * in the report. A waiver is a decision with a date on it: once expired, the
 * item fails again and says so. Pure, so the rules are unit-tested.
 */
export type Waiver = Inventory['readiness']['waivers'][number];

export interface ReadinessItem extends Omit<CheckOutcome, 'verdict'> {
  verdict: CheckOutcome['verdict'] | 'waived';
  /** The area the report groups it under: the system in its id (`s3.patroni.topology` → patroni). */
  area: string;
  waiver?: Waiver;
}

export interface Readiness {
  items: ReadinessItem[];
  /** Waivers naming no measured item (a typo waives nothing). */
  unknownWaivers: Waiver[];
  /** Waivers of items that pass now (they can go). */
  unneededWaivers: Waiver[];
  required: number;
  passed: number;
  waived: number;
  ready: boolean;
}

export function areaOf(id: string): string {
  return id.split('.')[1] ?? id;
}

/** `today` is a YYYY-MM-DD date in UTC; a waiver holds through its expiry day. */
export function assessReadiness(results: CheckOutcome[], waivers: Waiver[], today: string): Readiness {
  const byId = new Map(waivers.map((w) => [w.id, w]));
  const unneeded: Waiver[] = [];
  const items = results.map((r): ReadinessItem => {
    const base = { ...r, area: areaOf(r.id) };
    const w = byId.get(r.id);
    if (!w) return base;
    if (r.verdict === 'pass') {
      unneeded.push(w);
      return base;
    }
    if (w.expires < today) {
      return {
        ...base,
        verdict: 'fail',
        waiver: w,
        detail: `the waiver expired on ${w.expires} ("${w.reason}")${r.detail ? `\n${r.detail}` : ''}`,
        remedy: `${r.remedy ? `${r.remedy} ` : ''}Or renew the waiver in readiness.waivers with a new expiry date, if the reason still holds.`,
      };
    }
    return { ...base, verdict: 'waived', waiver: w };
  });
  const measured = new Set(results.map((r) => r.id));
  const required = items.filter((i) => i.required);
  const passed = required.filter((i) => i.verdict === 'pass' || i.verdict === 'warn').length;
  const waived = required.filter((i) => i.verdict === 'waived').length;
  return {
    items,
    unknownWaivers: waivers.filter((w) => !measured.has(w.id)),
    unneededWaivers: unneeded,
    required: required.length,
    passed,
    waived,
    ready: passed + waived === required.length,
  };
}
