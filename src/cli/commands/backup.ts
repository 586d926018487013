import type { Command } from 'commander';
import { BACKUP_TYPES, listBackups, markRestorePoint, takeBackup, type BackupRow, type BackupType } from '../../components/backups.js';
import { UsageError } from '../../errors.js';
import { twoWay } from '../../plan/step.js';
import { runSteps } from '../../tasks/run.js';
import { emitJson, withContext } from '../setup.js';

/**
 * `dpgc backup [--type full|diff|incr]`: one backup now, from a standby. Not
 * under dpgc's cluster lock: a backup changes no host's configuration, and
 * pgBackRest's own lock already refuses a second backup of the stanza (a
 * scheduled one included), which is said plainly (exit 2).
 */
export async function backupCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ type?: string }>();
  if (o.type !== undefined && !(BACKUP_TYPES as readonly string[]).includes(o.type)) {
    throw new UsageError(`--type must be one of ${BACKUP_TYPES.join(', ')}, got "${o.type}"`, { hint: 'Leave it out for an incremental backup (a full one when the repository has none).' });
  }
  await withContext(cmd, async (ctx) => {
    let result: Awaited<ReturnType<typeof takeBackup>> | undefined;
    const what = o.type ? `a ${o.type}` : 'an incremental (full when there is none)';
    await runSteps(
      [
        twoWay('command', `Take ${what} backup from a standby into the repository on the backup host`, undefined, {
          apply: async () => {
            result = await takeBackup(ctx.inventory, ctx.pool, o.type as BackupType | undefined);
            return { changed: true, note: result.row ? `${result.row.label}, ${result.seconds.toFixed(1)} s` : result.type };
          },
          observe: async () => ({ changed: true, note: 'would take a backup' }),
        }),
      ],
      { ...ctx.options, mode: ctx.options.dryRun ? 'observe' : 'apply', logger: ctx.logger },
    );
    if (result?.warning) ctx.logger.warn(result.warning);
    if (ctx.options.json) emitJson({ ok: true, type: result?.type, backup: result?.row, seconds: result?.seconds, ...(result?.warning ? { warning: result.warning } : {}) });
    else if (result?.row) ctx.logger.info(`Backup ${result.row.label} (${result.row.type}) done in ${result.seconds.toFixed(1)} s: ${formatBytes(result.row.sizeBytes)} of data, ${formatBytes(result.row.repoBytes)} stored.`);
  });
}

export async function backupListCommand(cmd: Command): Promise<void> {
  await withContext(cmd, async (ctx) => {
    const rows = await listBackups(ctx.inventory, ctx.pool);
    if (ctx.options.json) emitJson({ backups: rows });
    else process.stderr.write(`${formatRows(rows)}\n`);
  });
}

export async function backupMarkCommand(cmd: Command, name: string): Promise<void> {
  await withContext(cmd, async (ctx) => {
    const r = await markRestorePoint(ctx.inventory, ctx.secrets, name);
    if (ctx.options.json) emitJson({ ok: true, ...r });
    else ctx.logger.info(`Restore point ${r.name} at ${r.lsn} on ${r.on}, archived. Restore to it: dpgc restore --target-name ${r.name} --scratch`);
  });
}

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** Pure: the table `dpgc backup list` prints. */
export function formatRows(rows: BackupRow[]): string {
  if (!rows.length) return 'No backups in the repository yet: `dpgc backup` takes one.';
  const head = ['LABEL', 'TYPE', 'START (UTC)', 'DURATION', 'SIZE', 'STORED', 'WAL START', 'WAL STOP'];
  const body = rows.map((r) => [r.label + (r.error ? ' (ERROR)' : ''), r.type, r.start.replace('T', ' ').replace(/\.\d+Z$/, ''), `${r.durationS} s`, formatBytes(r.sizeBytes), formatBytes(r.repoBytes), r.walStart ?? '-', r.walStop ?? '-']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((cols) => cols.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
