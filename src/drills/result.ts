import type { Timings } from '../config/schema.js';
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
  writes: { acknowledged: number; acknowledgedAfterFault: number; inDoubt: number; refused: number; errors: Record<string, number> };
  reads: LoadLog['reads'];
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
