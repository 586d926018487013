import type { Inventory } from '../config/schema.js';
import { HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import { templateText } from '../templates.js';
import { alertThresholds, schedulePaths } from './backup-schedule.js';
import { REPO_USER } from './pgbackrest.js';

/**
 * Backup age and result for Prometheus, the way the ecosystem does it:
 * node_exporter's textfile collector reads a file a script rewrites after
 * every backup (the scheduled one and `dpgc backup`) from `pgbackrest info
 * --output=json`. The script runs as the repository's user (it reads the
 * repository); node_exporter reads the file. The alert thresholds travel in
 * the same file, so the rules (templates/prometheus/rules/backup.yml) are
 * the same text on every cluster and their promtool tests prove them as installed.
 */
type Inv = Pick<Inventory, 'cluster' | 'backup'>;

export const TEXTFILE = 'dpgc-backup.prom';

export function backupMetricsFiles(node: Pick<Node, 'paths'>) {
  return { script: schedulePaths(node).metrics, config: node.paths.backupMetricsConf, textfile: `${node.paths.textfileDir}/${TEXTFILE}` };
}

/** Pure: what the script reads (JSON, so no value is ever quoted into code). */
export function renderMetricsConfig(inv: Inv, node: Pick<Node, 'paths'>): string {
  const t = alertThresholds(inv);
  const f = backupMetricsFiles(node);
  return `${JSON.stringify(
    {
      conf: node.paths.pgbackrestConf,
      stanza: inv.cluster,
      state: node.paths.backupState,
      textfile: f.textfile,
      repo_path: inv.backup.repo_path,
      max_age_s: t.maxAgeS,
      full_max_age_s: t.fullMaxAgeS,
      repo_min_free_ratio: t.repoMinFreeRatio,
    },
    null,
    2,
  )}\n`;
}

export const backupMetricsScript = (): string => templateText('pgbackrest/backup-metrics.py');

/**
 * The textfile directory on the repository host: root's, and writable by the
 * repository's group, so the script (which must run as that user to read the
 * repository) can replace its file atomically. Other textfile writers (root's
 * cron jobs) are unaffected.
 */
export async function ensureTextfileDirForRepo(node: Node): Promise<boolean> {
  const dir = node.paths.textfileDir;
  const want = `775 root ${REPO_USER}`;
  // Why sh: a test and a stat in one round trip; the path is "$1", never spliced in.
  const r = await node.host.exec(['sh', '-c', '[ -d "$1" ] && stat -c "%a %U %G" -- "$1" || true', 'sh', dir], { mutates: false });
  if (r.stdout.trim() === want) return false;
  await node.host.exec(['install', '-d', '-o', 'root', '-g', REPO_USER, '-m', '775', dir]);
  return true;
}

/** Script and its config on the repository host, then one run, so the metrics exist before the first backup ends. */
export async function ensureBackupMetrics(inv: Inv, node: Node): Promise<{ changed: boolean; note?: string }> {
  const f = backupMetricsFiles(node);
  const a = await node.host.writeFile(f.script, backupMetricsScript(), { mode: 0o755 });
  const b = await node.host.writeFile(f.config, renderMetricsConfig(inv, node), { mode: 0o644 });
  const r = await node.host.exec(['/usr/bin/python3', f.script, f.config], { user: REPO_USER, allowFailure: true, timeoutMs: 300_000 });
  if (r.exitCode !== 0 && !r.skipped) {
    throw new HostError(`${node.spec.name}: the backup metrics script failed (exit ${r.exitCode}): ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' ')}`, {
      hint: `It runs \`pgbackrest info\` as ${REPO_USER}: \`dpgc verify --sprint 4\` says whether the repository answers.`,
    });
  }
  return { changed: a.changed || b.changed, note: `${f.textfile} refreshed` };
}

export interface BackupAttempt {
  type: string;
  /** Epoch seconds. */
  started: number;
  finished: number;
  exit: number;
}

/**
 * Records a backup attempt as the last one and refreshes the metrics. Never
 * throws: a backup's own result must not be hidden by its bookkeeping; what
 * went wrong is returned for the caller to mention.
 */
export async function recordBackupAttempt(node: Node, a: BackupAttempt): Promise<string | undefined> {
  const f = backupMetricsFiles(node);
  try {
    const r = await node.host.exec(['/usr/bin/python3', f.script, f.config, a.type, String(a.started), String(a.finished), String(a.exit)], { user: REPO_USER, allowFailure: true, timeoutMs: 300_000 });
    return r.exitCode === 0 || r.skipped ? undefined : `the backup metrics were not refreshed (exit ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''})`;
  } catch (e) {
    return `the backup metrics were not refreshed: ${(e as Error).message.split('\n')[0]}`;
  }
}
