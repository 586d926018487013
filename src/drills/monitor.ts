import type { Inventory } from '../config/schema.js';
import { assessHealth, type Health, type Snapshot } from './health.js';
import { snapshot } from './observe.js';
import { becomes, sleep } from '../wait.js';

/**
 * Watches Patroni's view every few hundred milliseconds for the whole drill
 * and keeps the first time each milestone was seen. Times are those of the
 * poll, so each is late by at most one interval (reported with the numbers).
 */
export const POLL_INTERVAL_MS = 250;

export interface Milestones {
  /** First view without the old leader as leader (no leader, or another one). */
  detectedAt: number | null;
  newLeader: string | null;
  /** First view with a new leader in state running. */
  newLeaderAt: number | null;
  /** A synchronous standby other than the victim (replica mode: Patroni moved sync elsewhere). */
  syncMovedAt: number | null;
  syncMovedTo: string | null;
  /** Victim streaming from the leader again (after `armRejoin`). */
  rejoinedAt: number | null;
  /** Whole cluster healthy (after `armRejoin`). */
  healthyAt: number | null;
  last: Snapshot | undefined;
  lastHealth: Health | undefined;
}

export interface Monitor {
  readonly m: Milestones;
  /** From `since` on, count the victim streaming again as its rejoin, and a healthy view as recovery. */
  armRejoin(since: number): void;
  /** Stop distrusting the victim's view (it is back: healed, woken, restarted). */
  trust(): void;
  until(pred: (m: Milestones) => boolean, timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

export function startMonitor(inv: Pick<Inventory, 'hosts' | 'ports'>, o: { oldLeader: string; victim: string; expected: string[]; since: number; distrust: string | undefined }): Monitor {
  const m: Milestones = { detectedAt: null, newLeader: null, newLeaderAt: null, syncMovedAt: null, syncMovedTo: null, rejoinedAt: null, healthyAt: null, last: undefined, lastHealth: undefined };
  let armedAt = Number.POSITIVE_INFINITY;
  let distrust = o.distrust;
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const started = Date.now();
      const s = await snapshot(inv, distrust === undefined ? {} : { distrust });
      const h = assessHealth(s, o.expected);
      m.last = s;
      m.lastHealth = h;
      if (s.at >= o.since) {
        if (m.detectedAt === null && s.from !== undefined && s.leader !== o.oldLeader) m.detectedAt = s.at;
        const leader = s.members.find((x) => x.name === s.leader);
        if (m.newLeaderAt === null && leader && leader.name !== o.oldLeader && leader.state === 'running') {
          m.newLeader = leader.name;
          m.newLeaderAt = s.at;
        }
        const otherSync = h.syncStandbys.find((n) => n !== o.victim);
        if (m.syncMovedAt === null && otherSync) {
          m.syncMovedAt = s.at;
          m.syncMovedTo = otherSync;
        }
        if (s.at >= armedAt) {
          const victimRepl = s.replication?.find((r) => r.application_name === o.victim);
          if (m.rejoinedAt === null && victimRepl?.state === 'streaming') m.rejoinedAt = s.at;
          if (m.healthyAt === null && h.healthy) m.healthyAt = s.at;
        }
      }
      await sleep(Math.max(0, POLL_INTERVAL_MS - (Date.now() - started)));
    }
  })();
  return {
    m,
    trust() {
      distrust = undefined;
    },
    armRejoin(since) {
      armedAt = since;
    },
    async until(pred, timeoutMs) {
      return (await becomes(() => pred(m), { timeoutMs, everyMs: 100 }, 'a drill milestone')) || pred(m);
    },
    async stop() {
      stopping = true;
      await loop;
    },
  };
}
