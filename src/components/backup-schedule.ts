import type { Inventory } from '../config/schema.js';
import { ConfigError, HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { render } from '../templates.js';
import { waitUntil } from '../wait.js';
import { FULL_EVERY_RUNS, REPO_USER, SCHEDULE } from './pgbackrest.js';

/**
 * Scheduled backups on the repository host: a systemd timer on real hosts, and
 * in the lab (no systemd) a supervised loop running the same script. Every run
 * writes its result to `<backupState>/last.json`, so a criterion can prove a
 * scheduled backup ran, not only that a schedule exists.
 */
type Inv = Pick<Inventory, 'cluster' | 'backup'>;

export type Schedule = { kind: 'interval'; seconds: number; text: string } | { kind: 'calendar'; expr: string; seconds: number; text: string };

const CALENDAR_PERIODS: Record<string, number> = { hourly: 3600, daily: 86_400, weekly: 604_800 };
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Pure: `backup.schedule` as an interval (`90s`, `15m`, `6h`, `1d`) or a
 * systemd OnCalendar expression. `seconds` is the period a criterion holds the
 * newest backup's age against; for a calendar expression other than
 * hourly/daily/weekly it is taken as a day.
 */
export function parseSchedule(text: string): Schedule {
  const m = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (m) {
    const seconds = Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    if (seconds < 30) throw new ConfigError(`backup.schedule ${JSON.stringify(text)} is shorter than 30 s: a backup would start before the last one ends`, { hint: 'Use 30s or more (1d is usual).' });
    return { kind: 'interval', seconds, text };
  }
  return { kind: 'calendar', expr: text.trim(), seconds: CALENDAR_PERIODS[text.trim()] ?? 86_400, text };
}

/** How old the newest backup may be before the schedule counts as missed: one period and a quarter (at least a minute more, for the backup's own duration). */
export function allowedAgeSeconds(s: Pick<Schedule, 'seconds'>): number {
  return s.seconds + Math.max(60, Math.round(s.seconds / 4));
}

/** The newest full backup may be as old as FULL_EVERY_RUNS periods (every 7th scheduled run is full), and a quarter. */
export function allowedFullAgeSeconds(s: Pick<Schedule, 'seconds'>): number {
  return allowedAgeSeconds({ seconds: s.seconds * FULL_EVERY_RUNS });
}

/** Pure: `90s`, `30m`, `26h`, `8d` in seconds (the schema has checked the form). */
export function durationSeconds(text: string): number {
  const m = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (!m) throw new ConfigError(`${JSON.stringify(text)} is not a duration`, { hint: 'Use a number and a unit: 90s, 30m, 26h or 8d.' });
  return Number(m[1]) * UNIT_SECONDS[m[2]!]!;
}

export interface AlertThresholds {
  maxAgeS: number;
  fullMaxAgeS: number;
  repoMinFreeRatio: number;
}

/** Pure: the backup alerts' thresholds, from `backup.alerts` (`auto`: from the schedule). */
export function alertThresholds(inv: Pick<Inventory, 'backup'>): AlertThresholds {
  const s = parseSchedule(inv.backup.schedule);
  const a = inv.backup.alerts;
  return {
    maxAgeS: a.max_age === 'auto' ? allowedAgeSeconds(s) : durationSeconds(a.max_age),
    fullMaxAgeS: a.full_max_age === 'auto' ? allowedFullAgeSeconds(s) : durationSeconds(a.full_max_age),
    repoMinFreeRatio: a.repo_min_free_pct / 100,
  };
}

export function schedulePaths(node: Pick<Node, 'paths'>) {
  return {
    script: `${node.paths.libexecDir}/pgbackrest-scheduled-backup`,
    loop: `${node.paths.libexecDir}/pgbackrest-schedule-loop`,
    result: `${node.paths.backupState}/last.json`,
    /** Writes the backup metrics for node_exporter (components/backup-metrics.ts); every run calls it. */
    metrics: `${node.paths.libexecDir}/pgbackrest-backup-metrics`,
    service: `${node.paths.systemdDir}/dpgc-pgbackrest-backup.service`,
    timer: `${node.paths.systemdDir}/dpgc-pgbackrest-backup.timer`,
  };
}

export function renderScheduledBackup(inv: Inv, node: Pick<Node, 'paths'>): string {
  const p = schedulePaths(node);
  return render('pgbackrest/scheduled-backup.sh.eta', {
    conf: node.paths.pgbackrestConf,
    stanza: inv.cluster,
    state: node.paths.backupState,
    fullEvery: FULL_EVERY_RUNS,
    metrics: p.metrics,
    metricsConf: node.paths.backupMetricsConf,
  });
}

/** The loop the lab runs instead of a timer. */
export function renderScheduleLoop(script: string, periodS: number): string {
  return render('pgbackrest/schedule-loop.sh.eta', { script, periodS });
}

/** What OnCalendar= may hold as dpgc writes it (unquoted): the schema's alphabet for backup.schedule. */
const CALENDAR_TEXT = /^[A-Za-z0-9*:.,/~ -]{1,64}$/;

export function renderTimerUnits(inv: Inv, node: Pick<Node, 'paths'>): { service: string; timer: string } {
  if (!CALENDAR_TEXT.test(inv.backup.schedule) || inv.backup.schedule !== inv.backup.schedule.trim()) {
    throw new ConfigError(`backup.schedule ${JSON.stringify(inv.backup.schedule)} cannot be written into a systemd timer`, { hint: 'Use an interval such as 6h, or a calendar expression such as daily.' });
  }
  const s = parseSchedule(inv.backup.schedule);
  const p = schedulePaths(node);
  return {
    service: render('pgbackrest/dpgc-pgbackrest-backup.service.eta', { stanza: inv.cluster, user: REPO_USER, script: p.script }),
    timer: render('pgbackrest/dpgc-pgbackrest-backup.timer.eta', {
      stanza: inv.cluster,
      schedule: s.text,
      calendar: s.kind === 'calendar' ? s.expr : undefined,
      periodS: s.seconds,
    }),
  };
}

export function loopService(inv: Inv, node: Pick<Node, 'paths'>): ServiceSpec {
  return { name: SCHEDULE, user: REPO_USER, argv: ['sh', schedulePaths(node).loop], restart: 'always', cwd: '/' };
}

/**
 * Installs the schedule. `started` is true when a first run was just set off
 * (a new or changed schedule), which the next step waits for.
 */
export async function ensureSchedule(inv: Inv, node: Node): Promise<{ changed: boolean; started: boolean; note?: string }> {
  const s = parseSchedule(inv.backup.schedule);
  const p = schedulePaths(node);
  // No run recorded, or the last one failed: run one now rather than wait a whole period with no backup.
  const last = await lastScheduledRun(node);
  const runNow = !last || last.exit !== 0;
  let changed = (await node.host.writeFile(p.script, renderScheduledBackup(inv, node), { mode: 0o755 })).changed;
  if (node.spec.services === 'systemd') {
    const units = renderTimerUnits(inv, node);
    const a = await node.host.writeFile(p.service, units.service, { mode: 0o644 });
    const b = await node.host.writeFile(p.timer, units.timer, { mode: 0o644 });
    changed = a.changed || b.changed || changed;
    if (a.changed || b.changed) {
      await verifyUnits(node, [p.service, p.timer]);
      await node.host.exec(['systemctl', 'daemon-reload']);
    }
    const enabled = await node.host.exec(['systemctl', 'is-active', 'dpgc-pgbackrest-backup.timer'], { mutates: false, allowFailure: true });
    if (enabled.stdout.trim() !== 'active' || changed || runNow) {
      await node.host.exec(['systemctl', 'enable', '--now', 'dpgc-pgbackrest-backup.timer']);
      // The first backup now, not at the first calendar time: the criteria want one.
      await node.host.exec(['systemctl', 'start', '--no-block', 'dpgc-pgbackrest-backup.service']);
      return { changed: true, started: true, note: `timer ${s.text}` };
    }
    return { changed, started: false };
  }
  if (s.kind === 'calendar' && !(s.expr in CALENDAR_PERIODS)) {
    throw new ConfigError(`backup.schedule ${JSON.stringify(s.text)} is a systemd calendar expression, and ${node.spec.name} runs services without systemd`, {
      hint: 'Use an interval such as 6h or 1d (or hourly, daily, weekly).',
    });
  }
  const loop = renderScheduleLoop(p.script, s.seconds);
  changed = (await node.host.writeFile(p.loop, loop, { mode: 0o755 })).changed || changed;
  const svc = loopService(inv, node);
  const st = await node.services.status(svc);
  if (st.running && !changed && !runNow) return { changed: false, started: false };
  // The loop's first run is at once: a restart is how a run is started now.
  if (st.running) await node.services.stop(svc);
  await node.services.start(svc);
  return { changed: true, started: true, note: `every ${s.seconds} s, a run now${runNow && last ? ' (the last one failed)' : ''}` };
}

/** `systemd-analyze verify` where the host has it (it checks the units' syntax and that ExecStart exists). */
async function verifyUnits(node: Node, files: string[]): Promise<void> {
  const has = await node.host.exec(['sh', '-c', 'command -v systemd-analyze'], { mutates: false, allowFailure: true });
  if (has.exitCode !== 0 || node.host.dryRun) return;
  const r = await node.host.exec(['systemd-analyze', 'verify', ...files], { mutates: false, allowFailure: true });
  if (r.exitCode !== 0) throw new HostError(`${node.spec.name}: systemd-analyze verify rejected the backup timer units:\n    ${r.stderr.trim()}`);
}

export interface ScheduledRun {
  started: number;
  finished: number;
  type: string;
  exit: number;
}

export async function lastScheduledRun(node: Node): Promise<ScheduledRun | undefined> {
  const text = await node.host.readFile(schedulePaths(node).result);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as ScheduledRun;
  } catch {
    return undefined;
  }
}

/** Until a scheduled run that started at or after `since` (epoch seconds) has finished. */
export async function waitForScheduledRun(node: Node, since: number, timeoutMs: number): Promise<ScheduledRun> {
  return waitUntil(
    async (seen) => {
      const r = await lastScheduledRun(node);
      seen(r ? `last run started ${new Date(r.started * 1000).toISOString()}, exit ${r.exit}` : 'no run recorded yet');
      return r && r.started >= since ? r : undefined;
    },
    { timeoutMs, everyMs: 1000 },
    `a scheduled backup on ${node.spec.name}`,
  );
}
