import { TIMING_PROFILES, type TimingProfileName } from '../../config/schema.js';
import { explainFailover, resolveTimings, worstCaseFailover } from '../../config/timings.js';
import type { Choice } from './prompts.js';

/**
 * Choices both wizards offer (`dpgc init`, and `dpgc sprint N` when the
 * inventory leaves the key out), so the two say the same thing.
 */

/** Each profile with the worst-case failover it buys, from the arithmetic the checks use (src/config/timings.ts). */
export function timingChoices(etcdColocated: boolean): Choice<TimingProfileName>[] {
  return (Object.keys(TIMING_PROFILES) as TimingProfileName[]).map((name) => {
    const b = worstCaseFailover(resolveTimings({ profile: name, rto_budget_s: 30 }), { etcdColocated });
    const t = TIMING_PROFILES[name];
    return {
      value: name,
      name: `${name.padEnd(8)} worst-case failover ${b.totalS} s`,
      description: `ttl/loop_wait/retry_timeout ${t.ttl}/${t.loop_wait}/${t.retry_timeout} s, HAProxy checks every ${t.check_inter_ms} ms: ${explainFailover(b)}`,
    };
  });
}

export const TIMING_MESSAGE = 'Failover timing profile (the worst case is for a host death; a crash keeps the leader)';

export const VECTOR_CHOICES: Choice<'pgvector' | 'ruvector'>[] = [
  { value: 'pgvector', name: 'pgvector', description: 'from Debian/PGDG sources, built on the hosts; HNSW indexes' },
  { value: 'ruvector', name: 'RuVector', description: 'from its pinned Docker image: needs Docker on every database host' },
];
