import { randomBytes } from 'node:crypto';
import type { RunContext } from '../context.js';
import { hostPaths } from '../config/paths.js';
import { inventoryWorstCase } from '../config/timings.js';
import { withClient, type Endpoint } from '../db/client.js';
import { CriteriaError, HostError } from '../errors.js';
import { deadServices } from '../components/cluster.js';
import { DATABASES, appViaPgbouncer } from '../components/endpoints.js';
import { ackSeries, computeOutage, distinctLost, verdict } from './analysis.js';
import { crashProcesses, freezeHost, killEtcdMember, killHost, killReplica, partitionHost, plannedSwitchover, stopPatroni, type Fault, type FaultDeps } from './faults.js';
import { assessHealth, describeSnapshot, type Snapshot } from './health.js';
import { DRILL_DDL, startLoad } from './load.js';
import { startMonitor, type Monitor } from './monitor.js';
import { promotionTime, snapshot } from './observe.js';
import { probeOldPrimary, type ProbeResult } from './probe.js';
import { deleteRun, readBack, type ReadbackResult } from './readback.js';
import { pickVictim } from './victim.js';
import { LEADER_CHANGING, type DrillMode } from './types.js';
import type { DrillResult } from './result.js';
import { sleep } from '../wait.js';

/**
 * One drill, as the issue tells it: refuse unless healthy; start the load;
 * inject the fault; watch Patroni and the clients; restore; read every row
 * back from every node; judge. Whatever goes wrong after the fault, the
 * fault is healed (SIGCONT, rules removed, services started) before the
 * error surfaces.
 */
export interface DrillOptions {
  mode: DrillMode;
  writers: number;
  readers: number;
  /** Seconds of steady load before the fault. */
  warmupS?: number;
  /** freeze, partition: seconds the victim stays stalled or cut off (default 2 × ttl). */
  stallS?: number;
}

/**
 * A hung primary that wakes before its lock has long expired shows little; one
 * that wakes after the cluster has moved on for a while shows what it can
 * lose. Twice the lock's life covers ttl, the new leader's promotion and the
 * routing checks with room to spare.
 */
export const defaultStallS = (t: { ttl: number }): number => 2 * t.ttl;
export const STALL_MODES: ReadonlySet<DrillMode> = new Set(['freeze', 'partition']);

type Ctx = Pick<RunContext, 'inventory' | 'secrets' | 'pool' | 'logger'>;
/** How long the drill waits, after Patroni looks healthy, for every writer to be served again. */
const WRITES_RESUME_TIMEOUT_MS = 60_000;

export function drillEndpoints(inv: RunContext['inventory']): { write: Endpoint; read: Endpoint } {
  const bouncer = inv.hosts.find((h) => h.roles.includes('pgbouncer'));
  const haproxy = inv.hosts.find((h) => h.roles.includes('haproxy'));
  if (!bouncer || !haproxy) throw new HostError(`${inv.file}: a drill needs hosts with the pgbouncer and haproxy roles (the application path)`);
  const d = DATABASES.project;
  return {
    write: appViaPgbouncer(inv, bouncer, 'project'),
    read: { name: `${haproxy.name} (HAProxy replicas)`, address: haproxy.address, port: inv.ports.haproxy_replicas, database: d.name, user: d.owner, secret: d.secret },
  };
}

/** The drill in its phases; each phase takes what the earlier ones established. */
export async function runDrill(ctx: Ctx, o: DrillOptions): Promise<DrillResult> {
  const pf = await preflight(ctx, o);
  const load = await startDrillLoad(ctx, o);
  const f = await faultAndRecover(ctx, o, pf, load);
  const rb = await readBackPhase(ctx, o, pf, load, f);
  return drillVerdict(ctx, o, pf, load, f, rb);
}

/** Preflight: a healthy cluster with a leader, or a refusal that says what to repair; then the victim. */
interface Preflight {
  expected: string[];
  worst: ReturnType<typeof inventoryWorstCase>;
  oldLeader: string;
  stallS: number | null;
  victim: string;
}

async function preflight(ctx: Ctx, o: DrillOptions): Promise<Preflight> {
  const inv = ctx.inventory;
  const expected = inv.hosts.filter((h) => h.roles.includes('postgres')).map((h) => h.name);
  const worst = inventoryWorstCase(inv);
  const pre = await snapshot(inv);
  const health = assessHealth(pre, expected);
  if (!health.healthy || !pre.leader) {
    // The cluster view knows which daemon is down and what restarts it.
    const dead = await deadServices(ctx).catch(() => []);
    const remedies = dead.map((d) => d.remedy);
    throw new CriteriaError(`refusing to run a ${o.mode} drill: the cluster is not healthy\n  ${[...health.problems, ...dead.map((d) => d.problem)].join('\n  ')}`, {
      hint: `A drill on a degraded cluster proves nothing and may lose data. ${remedies.length ? remedies.join(' ') : 'Run `dpgc status`, repair (`dpgc sprint 3` restarts what is stopped),'} Then try again.`,
    });
  }
  const stallS = STALL_MODES.has(o.mode) ? (o.stallS ?? defaultStallS(inv.timings)) : null;
  const victim = await pickVictim(ctx, o.mode, pre, health);
  ctx.logger.info(`Pre-check: ${describeSnapshot(pre)}; ${o.mode} drill on ${victim}`);
  return { expected, worst, oldLeader: pre.leader, stallS, victim };
}

/** Load: the drill's table, writers and readers on the application path, every writer acknowledged, then a warm-up. */
interface DrillLoad {
  run: string;
  load: ReturnType<typeof startLoad>;
  startedAt: number;
}

async function startDrillLoad(ctx: Ctx, o: DrillOptions): Promise<DrillLoad> {
  const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const ep = drillEndpoints(ctx.inventory);
  await withClient(ctx.secrets, ep.write, async (c) => {
    for (const sql of DRILL_DDL) await c.query(sql);
  });
  const load = startLoad(ctx.secrets, { run, writers: o.writers, readers: o.readers, writeEndpoint: ep.write, readEndpoint: ep.read });
  const loadStarted = Date.now();
  if (!(await load.allWritersAckedAfter(loadStarted - 1, 15_000))) {
    const l = await load.stop();
    throw new HostError(`the drill's writers could not write through ${ep.write.name}:${ep.write.port} within 15 s: ${Object.keys(l.errors).slice(0, 3).join('; ') || 'no error, no acknowledgement'}`, {
      hint: 'Check the application path with `dpgc verify --sprint 1` (PgBouncer) and `dpgc status` (HAProxy, Patroni).',
    });
  }
  await sleep((o.warmupS ?? 2) * 1000);
  return { run, load, startedAt: loadStarted };
}

/**
 * Fault and recovery share one record: whatever goes wrong after the fault,
 * it is healed (once) before the error surfaces, and the clients and the
 * watcher do not outlive the drill.
 */
interface FaultRun {
  mon: Monitor;
  faultAt: number;
  fault?: Fault;
  healed?: string;
  healedAt: number | null;
  probe?: ProbeResult;
  notes: string[];
}

async function faultAndRecover(ctx: Ctx, o: DrillOptions, pf: Preflight, ld: DrillLoad): Promise<FaultRun> {
  const inv = ctx.inventory;
  const watchFrom = Date.now();
  // The victim's own view is stale while it is dead, hung or cut off; etcd-member and switchover leave it sound.
  const distrust = o.mode === 'etcd-member' || o.mode === 'switchover' ? undefined : pf.victim;
  const f: FaultRun = {
    mon: startMonitor(inv, { oldLeader: pf.oldLeader, victim: pf.victim, expected: pf.expected, since: watchFrom, distrust }),
    faultAt: watchFrom,
    healedAt: null,
    notes: [],
  };
  const heal = async () => {
    if (f.fault && f.healed === undefined) {
      f.healed = await f.fault.heal();
      f.healedAt = Date.now();
      f.mon.trust();
      ctx.logger.info(`Restore: ${f.healed}`);
    }
  };
  let completed = false;
  try {
    await injectFault(ctx, o, pf, ld, f, heal);
    await recover(ctx, o, ld, f);
    completed = true;
  } finally {
    await heal().catch((e) => f.notes.push(`restore failed: ${(e as Error).message}`));
    if (!completed) {
      // The error is on its way up; the clients and the watcher must not outlive it.
      await ld.load.stop().catch(() => undefined);
      await f.mon.stop().catch(() => undefined);
    }
  }
  return f;
}

/** Fault: inject it, watch for a new leader where one is due, keep a stall for its length, then heal. */
async function injectFault(ctx: Ctx, o: DrillOptions, pf: Preflight, ld: DrillLoad, f: FaultRun, heal: () => Promise<void>): Promise<void> {
  const inv = ctx.inventory;
  const log = ctx.logger;
  const fault = await inject({ inventory: inv, secrets: ctx.secrets, pool: ctx.pool }, o.mode, pf.victim, ld.run, pf.worst.totalS, pf.stallS ?? 0);
  f.fault = fault;
  f.faultAt = fault.at;
  log.info(`Fault at ${new Date(f.faultAt).toISOString()}: ${fault.description}`);
  const ttlMargin = (inv.timings.ttl + Math.max(2, inv.timings.loop_wait)) * 1000;
  if (LEADER_CHANGING.has(o.mode)) {
    if (pf.stallS !== null) log.info(`Keeping ${pf.victim} ${o.mode === 'freeze' ? 'stopped' : 'cut off'} for ${pf.stallS} s`);
    const gotLeader = await f.mon.until((m) => m.newLeaderAt !== null, (pf.worst.totalS + 30) * 1000);
    if (!gotLeader) f.notes.push(`no new leader within ${pf.worst.totalS + 30} s of the fault`);
    else log.info(`New leader ${f.mon.m.newLeader} seen ${((f.mon.m.newLeaderAt! - f.faultAt) / 1000).toFixed(2)} s after the fault`);
    if (pf.stallS !== null) {
      // The old leader stays away for the whole stall, then comes back into a cluster that has moved on.
      await sleep(Math.max(0, f.faultAt + pf.stallS * 1000 - Date.now()));
    }
    await fault.settled;
    await heal();
    if (o.mode === 'freeze' && f.mon.m.newLeaderAt !== null) {
      f.probe = await probeOldPrimary(inv, ctx.secrets, pf.victim, ld.run);
      log.info(`Old primary ${pf.victim} after waking: ${f.probe.detail}`);
    }
  } else {
    // etcd-member, replica: the fault stays long enough for Patroni to act on it (ttl + two loops).
    await sleep(ttlMargin + inv.timings.loop_wait * 1000);
    await heal();
  }
}

/** Recover: the cluster healthy again (the victim rejoined where it should), and every writer served again. */
async function recover(_ctx: Ctx, o: DrillOptions, ld: DrillLoad, f: FaultRun): Promise<void> {
  f.mon.armRejoin(f.healedAt ?? Date.now());
  // The victim rejoins as a replica unless it was never demoted (etcd-member: not a PostgreSQL member; crash: it keeps leading).
  const victimRejoins = o.mode !== 'etcd-member' && o.mode !== 'crash';
  const recovered = await f.mon.until((m) => m.healthyAt !== null && (!victimRejoins || m.rejoinedAt !== null), 180_000);
  if (!recovered) f.notes.push(`cluster not healthy 180 s after the restore: ${f.mon.m.lastHealth?.problems.join('; ') ?? 'no view'}`);
  // Patroni being healthy is not the client being served: wait (bounded) until every writer writes again.
  const resumedSince = f.mon.m.newLeaderAt ?? f.healedAt ?? f.faultAt;
  if (!(await ld.load.allWritersAckedAfter(resumedSince, WRITES_RESUME_TIMEOUT_MS))) f.notes.push(`not every writer had written again ${WRITES_RESUME_TIMEOUT_MS / 1000} s after the cluster recovered`);
  await sleep(1000);
}

/** Read-back: the load stopped, every row read back from every node, and Patroni's account of promotions. */
interface ReadBack {
  loadLog: Awaited<ReturnType<DrillLoad['load']['stop']>>;
  after: Snapshot;
  newLeader: string | null;
  rb: Pick<ReadbackResult, 'nodes' | 'unchecked'>;
  promotedAt: number | null;
  repromotedAt: number | null;
  retakenFrom: string | null;
}

async function readBackPhase(ctx: Ctx, o: DrillOptions, pf: Preflight, ld: DrillLoad, f: FaultRun): Promise<ReadBack> {
  const inv = ctx.inventory;
  const loadLog = await ld.load.stop();
  await f.mon.stop();
  const m = f.mon.m;
  const after = m.last ?? (await snapshot(inv));
  const newLeader = after.leader ?? null;
  const rb = newLeader ? await readBack(inv, ctx.secrets, { run: ld.run, leader: newLeader, acks: loadLog.acks, inDoubt: loadLog.inDoubt }) : { nodes: [], unchecked: [{ node: 'leader', reason: 'no leader' }] };
  const promotedAt = LEADER_CHANGING.has(o.mode) && m.newLeader ? ((await promotionTime(inv, m.newLeader, f.faultAt)) ?? m.newLeaderAt) : null;
  // A kept leader with a timeline newer than the fault was demoted and promoted again on the way.
  const repromotedAt = !LEADER_CHANGING.has(o.mode) && newLeader === pf.oldLeader ? await promotionTime(inv, pf.oldLeader, f.faultAt) : null;
  // Another member led, and the old leader holds the key again by the end of the drill: on
  // resuming (freeze) or reconnecting (partition) it wrote the key over the new leader's, as
  // Patroni before 3.0.3 does when its cached view is stale (patroni/patroni#2689). Seen in the
  // lab both on the old timeline and after an offline demotion ("promoted self to leader because
  // I had the session lock"); a legitimate return would need a rejoin and an election first.
  const retakenFrom = LEADER_CHANGING.has(o.mode) && m.newLeader !== null && newLeader === pf.oldLeader ? m.newLeader : null;
  return { loadLog, after, newLeader, rb, promotedAt, repromotedAt, retakenFrom };
}

/** Verdict: the criteria, the notes that explain them, and the whole record. */
async function drillVerdict(ctx: Ctx, o: DrillOptions, pf: Preflight, ld: DrillLoad, f: FaultRun, r: ReadBack): Promise<DrillResult> {
  const inv = ctx.inventory;
  const { oldLeader, victim, worst, expected, stallS } = pf;
  const { loadLog, after, newLeader, rb, promotedAt, repromotedAt, retakenFrom } = r;
  const { faultAt, notes } = f;
  const m = f.mon.m;
  if (retakenFrom) {
    notes.push(
      `${oldLeader} took the leader key back from ${retakenFrom}: Patroni before 3.0.3 overwrites the key when a stalled or cut-off leader comes back (patroni/patroni#2689); ` +
        `writes ${retakenFrom} acknowledged are not on ${oldLeader}. Remedy: Patroni 3.0.3 or later, and a watchdog so a hung primary is reset rather than resumed`,
    );
  }
  const outage = computeOutage(loadLog.acks, faultAt, loadLog.stoppedAt);
  const lost = distinctLost(rb.nodes);
  const finalHealth = assessHealth(after, expected);
  const criteria = verdict({
    mode: o.mode,
    budgetS: inv.timings.rto_budget_s,
    outage,
    nodes: rb.nodes,
    acksAfterFault: loadLog.acks.filter((a) => a.ackAt > faultAt).length,
    oldLeader,
    newLeader,
    oldPrimaryAcceptedWrite: f.probe?.accepted,
    // A crashed leader comes back through a promotion of its own (a new timeline): expected, reported in a note.
    leaderRepromotedS: LEADER_CHANGING.has(o.mode) || o.mode === 'crash' ? undefined : repromotedAt === null ? null : (repromotedAt - faultAt) / 1000,
    leaderRetakenFrom: retakenFrom,
    healthyAfter: finalHealth.healthy,
    healthDetail: finalHealth.healthy ? describeSnapshot(after) : finalHealth.problems.join('; '),
  });
  criteria.push({
    id: 'every-node-checked',
    ok: rb.unchecked.length === 0,
    detail: rb.unchecked.length === 0 ? `rows read back from ${rb.nodes.map((n) => n.node).join(', ')}` : rb.unchecked.map((u) => `${u.node}: ${u.reason}`).join('; '),
  });
  if (newLeader && !(await deleteRun(inv, ctx.secrets, newLeader, ld.run).catch(() => false))) {
    notes.push(`could not delete the drill's rows (run ${ld.run}) on ${newLeader} within 10 s: writes on the leader hang (no synchronous standby answers?)`);
  }

  if (o.mode === 'crash' && newLeader === oldLeader) {
    notes.push(
      repromotedAt === null
        ? `${oldLeader} kept leading on its timeline`
        : `${oldLeader} resumed as leader with its lock still held (promoted again on a new timeline at +${((repromotedAt - faultAt) / 1000).toFixed(2)} s): no failover`,
    );
  }
  if (o.mode === 'replica') {
    notes.push(
      m.syncMovedAt === null
        ? `synchronous mode: no other synchronous standby was named while ${victim} was down`
        : `synchronous mode: Patroni made ${m.syncMovedTo} the synchronous standby ${((m.syncMovedAt - faultAt) / 1000).toFixed(2)} s after ${victim} died; commits paused at most ${outage.seconds?.toFixed(2) ?? '?'} s`,
    );
  }
  const rel = (t: number | null) => (t === null ? null : Math.round(t - faultAt) / 1000);
  return {
    mode: o.mode,
    run: ld.run,
    victim,
    oldLeader,
    newLeader,
    fault: f.fault?.description ?? 'not injected',
    stallS,
    restore: f.healed ?? 'not restored',
    timings: { ...inv.timings, worstCaseS: worst.totalS },
    timeline: {
      faultAt: new Date(faultAt).toISOString(),
      detectedS: rel(m.detectedAt),
      newLeaderSeenS: rel(m.newLeaderAt),
      promotedS: rel(promotedAt),
      lastAckBeforeS: rel(outage.lastAckBefore),
      firstWriteS: rel(outage.firstAckAfter),
      syncMovedS: o.mode === 'replica' ? rel(m.syncMovedAt) : null,
      restoredS: rel(f.healedAt),
      rejoinedS: o.mode === 'etcd-member' || o.mode === 'crash' ? null : rel(m.rejoinedAt),
      healthyS: rel(m.healthyAt),
    },
    outage,
    writes: {
      acknowledged: loadLog.acks.length,
      acknowledgedAfterFault: loadLog.acks.filter((a) => a.ackAt > faultAt).length,
      lost: lost.length,
      lostSample: lost.slice(0, 10),
      inDoubt: loadLog.inDoubt.length,
      refused: loadLog.refused,
      errors: loadLog.errors,
    },
    reads: loadLog.reads,
    // From the load's start to its last acknowledgement (which may come just after the stop was asked for): every ack is in the series.
    series: ackSeries(loadLog.acks, faultAt, loadLog.acks.reduce((t, a) => Math.min(t, a.ackAt), ld.startedAt), loadLog.acks.reduce((t, a) => Math.max(t, a.ackAt + 1), loadLog.stoppedAt)),
    nodes: rb.nodes.map((n) => ({ node: n.node, role: n.role, rows: n.rows, lost: n.lost.length, lostSample: n.lost.slice(0, 10), duplicates: n.duplicates.length, unexpected: n.unexpected, inDoubtCommitted: n.inDoubtCommitted })),
    unchecked: rb.unchecked,
    ...(f.probe ? { oldPrimaryProbe: f.probe } : {}),
    after: describeSnapshot(after),
    repair: finalHealth.healthy ? null : repairAdvice(inv, o.mode, victim, finalHealth.problems),
    leaderRetakenFrom: retakenFrom,
    notes,
    criteria,
    passed: criteria.every((c) => c.ok),
  };
}

async function inject(d: FaultDeps, mode: DrillMode, victim: string, run: string, worstS: number, stallS: number): Promise<Fault> {
  switch (mode) {
    case 'switchover':
      return plannedSwitchover(d, victim);
    case 'kill':
      return killHost(d, victim);
    case 'crash':
      return crashProcesses(d, victim);
    case 'stop':
      return stopPatroni(d, victim);
    case 'freeze':
      return freezeHost(d, victim);
    case 'partition':
      // The dead-man timer heals the host even if this process dies mid-drill.
      return partitionHost(d, victim, run, stallS + worstS + 120);
    case 'etcd-member':
      return killEtcdMember(d, victim);
    case 'replica':
      return killReplica(d, victim);
  }
}

/** The state the drill left, and for each problem the command that repairs it. */
function repairAdvice(inv: RunContext['inventory'], mode: DrillMode, victim: string, problems: string[]): string {
  const fixes = new Set<string>();
  for (const p of problems) {
    const member = /^(\S+) (is not replicating|replication is|is on timeline)/.exec(p)?.[1];
    const host = member ? inv.hosts.find((h) => h.name === member) : undefined;
    if (host) {
      // A member that runs but does not stream has usually diverged (a timeline the leader never had): re-clone it.
      fixes.add(`on ${host.name}: \`patronictl -c ${hostPaths(inv, host).patroniConf} reinit ${inv.cluster} ${host.name} --force\` (re-clones it from the leader, discarding its diverged data)`);
    } else if (/not a member|no Patroni member answers/.test(p)) {
      fixes.add('`dpgc sprint 3` (starts Patroni wherever it is stopped)');
    } else if (/no leader|more than one leader/.test(p)) {
      fixes.add('`dpgc status` to see each member; once etcd is healthy (`dpgc verify --sprint 2`) Patroni elects a leader by itself');
    }
  }
  if (mode === 'etcd-member') fixes.add(`\`dpgc sprint 2\` (starts etcd on ${victim} again)`);
  if (fixes.size === 0) fixes.add('`dpgc status`, then `dpgc sprint 3`');
  return `${problems.join('; ')}. Repair: ${[...fixes].join('; ')}.`;
}
