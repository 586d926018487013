import type { Timings } from '../config/schema.js';
import type { AckSeries } from './analysis.js';
import type { ProbeResult } from './probe.js';
import type { Criterion, DrillMode, LoadLog, Outage } from './types.js';

/** Everything one drill measured: the --json document's `drills[]` entries. Times in the timeline are seconds after the fault. */
export interface DrillResult {
  mode: DrillMode;
  run: string;
  victim: string;
  oldLeader: string;
  newLeader: string | null;
  fault: string;
  /** freeze and partition: how long the victim was kept stalled or cut off (seconds). */
  stallS: number | null;
  restore: string;
  timings: Timings & { worstCaseS: number };
  timeline: {
    faultAt: string;
    detectedS: number | null;
    newLeaderSeenS: number | null;
    promotedS: number | null;
    lastAckBeforeS: number | null;
    firstWriteS: number | null;
    syncMovedS: number | null;
    restoredS: number | null;
    rejoinedS: number | null;
    healthyS: number | null;
  };
  outage: Outage;
  /** `lost`: distinct acknowledged writes missing on at least one node (per-node counts are in `nodes`). */
  writes: { acknowledged: number; acknowledgedAfterFault: number; lost: number; lostSample: { writer: number; seq: number }[]; inDoubt: number; refused: number; errors: Record<string, number> };
  reads: LoadLog['reads'];
  /** Acknowledged writes per 100 ms per writer, from the load's start to its stop: the report's timeline chart. */
  series: AckSeries;
  nodes: { node: string; role: string; rows: number; lost: number; lostSample: { writer: number; seq: number }[]; duplicates: number; unexpected: number; inDoubtCommitted: number }[];
  unchecked: { node: string; reason: string }[];
  oldPrimaryProbe?: ProbeResult;
  /** The cluster as the drill left it. */
  after: string;
  /** When the drill could not leave the cluster healthy: its state and the command that repairs it. */
  repair: string | null;
  /** The member whose leadership the old leader overwrote on resuming (patroni/patroni#2689), else null. */
  leaderRetakenFrom: string | null;
  notes: string[];
  criteria: Criterion[];
  passed: boolean;
}
