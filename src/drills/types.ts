/** The vocabulary of a failure drill, shared by the engine, the analysis and the report. */

export const DRILL_MODES = ['switchover', 'kill', 'crash', 'stop', 'freeze', 'partition', 'etcd-member', 'replica'] as const;
export type DrillMode = (typeof DRILL_MODES)[number];

/** Modes that move the leader; the others must leave it where it is and keep writes flowing. */
export const LEADER_CHANGING: ReadonlySet<DrillMode> = new Set(['switchover', 'kill', 'stop', 'freeze', 'partition']);

/** One insert whose COMMIT the server acknowledged, with client wall-clock times (ms since epoch). */
export interface Ack {
  writer: number;
  seq: number;
  sentAt: number;
  ackAt: number;
}

/**
 * An insert that failed after it was sent: the connection died, so the
 * client cannot know whether it committed. Such rows may exist or not; they
 * are never counted as lost, and never as unexpected.
 */
export interface InDoubt {
  writer: number;
  seq: number;
  at: number;
  error: string;
}

/** A row read back from one node: (writer, seq) and how many times it is there. */
export interface RowCount {
  writer: number;
  seq: number;
  count: number;
}

/** Everything the writers and readers saw. */
export interface LoadLog {
  acks: Ack[];
  inDoubt: InDoubt[];
  /** Failed attempts that certainly did not commit (connect errors, read-only refusals). */
  refused: number;
  /** Distinct error messages with counts, for the report. */
  errors: Record<string, number>;
  reads: { ok: number; failed: number; maxGapMs: number | null };
  /** When the load was told to stop: a gap running up to here is an outage that never ended. */
  stoppedAt: number;
}

export interface NodeRows {
  node: string;
  role: string;
  /** Acknowledged rows missing on this node. */
  lost: { writer: number; seq: number }[];
  /** (writer, seq) present more than once. */
  duplicates: RowCount[];
  /** Rows neither acknowledged nor in doubt: a write the client never made. */
  unexpected: number;
  /** In-doubt writes that did commit. */
  inDoubtCommitted: number;
  rows: number;
}

export interface Outage {
  /** Longest span without any acknowledged write that ends after the fault; null when no write was acknowledged after it. */
  seconds: number | null;
  lastAckBefore: number | null;
  firstAckAfter: number | null;
  /**
   * Seconds without any acknowledged write at the end of the drill, when that
   * trailing gap is the longest: writes had not recovered when the load stopped.
   */
  unrecoveredS: number | null;
  /** Same, but per writer: the client that waited longest (null when one never recovered). */
  worstWriterSeconds: number | null;
  /** Longest gap before the fault: the noise floor the outage stands out from. */
  baselineGapSeconds: number | null;
}

export interface Criterion {
  id: string;
  ok: boolean;
  detail: string;
}
