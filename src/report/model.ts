import type { BackupRow } from '../components/backups.js';
import type { Readiness } from '../checks/waivers.js';

/**
 * Everything `dpgc report` shows, gathered first (collect.ts) and rendered
 * after by pure functions (html.ts, charts.ts): the rendering is unit-tested
 * without a cluster, and a part that could not be read is an `error` in its
 * section, never a missing report.
 */
export interface ReportData {
  cluster: string;
  generatedAt: string;
  dpgcVersion: string;
  topology: Topology;
  /** Absent when this run did not measure it (failover-test --html). */
  readiness?: Readiness;
  drills: { rows: DrillRow[]; error?: string };
  backups: BackupSection;
  lag: LagSection;
}

export interface Topology {
  hosts: { name: string; address: string; roles: string[] }[];
  members: { name: string; role: string; state: string; timeline?: number; syncState?: string; lagBytes?: number; postgres?: string; patroni?: string; error?: string }[];
  leader?: string;
  syncStandby?: string;
  etcdLeader?: string;
  error?: string;
}

export interface DrillRow {
  id: number;
  mode: string;
  at: string;
  passed: boolean;
  summary: string;
  /** The drill log row's JSON, validated (drills.ts); absent on rows recorded before it existed. */
  detail?: import('../drills/report.js').DrillDetail;
}

export type BackupSection =
  | { deployed: false; why: string }
  | { deployed: true; repoHost: string; rows: BackupRow[]; error?: string; pitr?: { verdict: string; value?: string; detail?: string; measured: boolean } };

export interface LagSection {
  /** Seconds since the epoch; one series per replica instance. */
  series: { instance: string; points: [number, number][] }[];
  from: number;
  to: number;
  error?: string;
}
