import { allowedAgeSeconds, lastScheduledRun, parseSchedule } from '../components/backup-schedule.js';
import { runPitrDrill, switchAndWaitArchived } from '../components/pitr-drill.js';
import { checkOn, REPO_USER, repoHost, repoNode, stanzaInfo } from '../components/pgbackrest.js';
import { dashboardsCheck } from './grafana.js';
import { rulesCheck, type RuleInput } from './prometheus.js';
import { fail, pass, warn, type Check } from './types.js';

/** pgBackRest's criteria (sprint 4): each measured live, each broken on purpose in test/integration/sprint4.test.ts. */

const RERUN = 'Re-run `dpgc sprint 4` (safe to repeat).';

export const pgbackrestCheck: Check = {
  id: 's4.pgbackrest.check',
  title: '`pgbackrest check` passes on every database host and on the repository host',
  sprint: 4,
  kind: 'read',
  async run(ctx) {
    const inv = ctx.inventory;
    const names = [...ctx.pool.specs('postgres').map((h) => h.name), repoHost(inv).name];
    const results = await Promise.all(names.map(async (n) => ({ n, ...(await checkOn(inv, await ctx.pool.node(n))) })));
    const bad = results.filter((r) => !r.ok);
    return bad.length
      ? fail(bad.map((b) => `${b.n}: ${b.detail}`).join('; '), { value: `${names.length - bad.length}/${names.length} hosts`, remedy: `${RERUN} Each host's log is under its pgBackRest log directory.` })
      : pass(`${names.length}/${names.length} hosts`, 'all');
  },
};

export const backupRecent: Check = {
  id: 's4.backup.recent',
  title: 'A full backup exists, and the newest backup is as recent as the schedule allows',
  sprint: 4,
  kind: 'state',
  async run(ctx) {
    const inv = ctx.inventory;
    const info = await stanzaInfo(inv, await repoNode(inv, ctx.pool));
    const ok = (info?.backup ?? []).filter((b) => !b.error);
    const allowed = allowedAgeSeconds(parseSchedule(inv.backup.schedule));
    const threshold = `a full backup; newest ≤ ${allowed} s old (schedule ${inv.backup.schedule})`;
    if (!ok.some((b) => b.type === 'full')) return fail('the repository holds no full backup', { threshold, remedy: 'Run `dpgc backup --type full`.' });
    const newest = ok.reduce((a, b) => (b.timestamp.stop > a.timestamp.stop ? b : a));
    const age = Math.round(Date.now() / 1000 - newest.timestamp.stop);
    const value = `${ok.length} backup(s), newest ${newest.type} ${newest.label} ${age} s old`;
    return age > allowed ? fail(`the newest backup is ${age} s old; the schedule allows ${allowed} s`, { value, threshold, remedy: 'Check the scheduled backup (s4.schedule.fired), then run `dpgc backup`.' }) : pass(value, threshold);
  },
};

export const archiveWorks: Check = {
  id: 's4.archive.working',
  title: 'The current leader archives WAL to the repository (a forced WAL switch is archived within 60 s)',
  sprint: 4,
  kind: 'read',
  async run(ctx) {
    try {
      const r = await switchAndWaitArchived(ctx.inventory, ctx.secrets, 60_000);
      return pass(`${r.wal} archived in ${(r.ms / 1000).toFixed(1)} s`, '≤ 60 s');
    } catch (e) {
      return fail((e as Error).message.split('\n')[0]!, { remedy: `${RERUN} It converges archive_command in Patroni's dynamic configuration; pgBackRest logs archive-push failures on the leader.` });
    }
  },
};

export const scheduleFired: Check = {
  id: 's4.schedule.fired',
  title: 'A scheduled backup ran, succeeded, and is as recent as the schedule allows',
  sprint: 4,
  kind: 'state',
  async run(ctx) {
    const inv = ctx.inventory;
    const node = await repoNode(inv, ctx.pool);
    const last = await lastScheduledRun(node);
    const allowed = allowedAgeSeconds(parseSchedule(inv.backup.schedule));
    const threshold = `exit 0, ≤ ${allowed} s ago`;
    if (!last) return fail(`no scheduled backup has run on ${node.spec.name}`, { threshold, remedy: RERUN });
    const age = Math.round(Date.now() / 1000 - last.finished);
    const value = `${last.type}, exit ${last.exit}, ${age} s ago`;
    if (last.exit !== 0) return fail(`the last scheduled backup failed (exit ${last.exit}); its output is in ${node.paths.backupState}/last.log on ${node.spec.name}`, { value, threshold, remedy: 'Fix what the log says; the next scheduled run retries.' });
    if (age > allowed) return fail(`the last scheduled backup ran ${age} s ago; the schedule (${inv.backup.schedule}) allows ${allowed} s`, { value, threshold, remedy: `Is the schedule running on ${node.spec.name}? ${RERUN}` });
    return pass(value, threshold);
  },
};

export const repoEncrypted: Check = {
  id: 's4.repo.encrypted',
  title: 'The repository is encrypted (aes-256-cbc) and readable by its own user only',
  sprint: 4,
  kind: 'state',
  async run(ctx) {
    const inv = ctx.inventory;
    const node = await repoNode(inv, ctx.pool);
    const problems: string[] = [];
    const info = await stanzaInfo(inv, node);
    const cipher = info?.repo?.[0]?.cipher ?? info?.cipher;
    if (cipher !== 'aes-256-cbc') problems.push(`pgbackrest info reports cipher ${cipher ?? 'none'}`);
    const repo = inv.backup.repo_path;
    const st = (await node.host.exec(['stat', '-c', '%a %U', repo], { mutates: false })).stdout.trim();
    const [mode = '', owner = ''] = st.split(' ');
    if (owner !== REPO_USER) problems.push(`${repo} is owned by ${owner}, not ${REPO_USER}`);
    if (mode.padStart(3, '0').slice(-2) !== '00') problems.push(`${repo} has mode ${mode}: group or others have access`);
    // Read as a user who is not the owner: nothing of the repository may be reachable.
    const info0 = `${repo}/backup/${inv.cluster}/backup.info`;
    const asOther = await node.host.exec(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', 'sh', '-c', 'if cat -- "$1" >/dev/null 2>&1; then echo READABLE; else echo REFUSED; fi', 'sh', info0], { mutates: false, allowFailure: true });
    if (asOther.stdout.trim() !== 'REFUSED') problems.push(`user nobody can read ${info0} (${asOther.stdout.trim() || asOther.stderr.trim()})`);
    // pgBackRest's encrypted files are OpenSSL-format: they start with "Salted__", never with the plain-text info file's "[backrest]".
    const head = (await node.host.exec(['head', '-c', '8', info0], { mutates: false, allowFailure: true })).stdout;
    if (head !== 'Salted__') problems.push(`${info0} is not encrypted (starts with ${JSON.stringify(head)})`);
    return problems.length ? fail(problems.join('; '), { remedy: `${RERUN} It puts the repository's mode and owner back; a repository created without encryption must be made again (stanza-delete, then the sprint).` }) : pass(`cipher ${cipher}, mode ${mode} ${owner}`, `aes-256-cbc, ${REPO_USER} only`);
  },
};

export const pitrDrill: Check = {
  id: 's4.pitr.drill',
  title: 'PITR drill: a restore to time T in a scratch instance holds every marker written before T, none after, and the application data as it was at T',
  sprint: 4,
  kind: 'load',
  async run(ctx) {
    const r = await runPitrDrill(ctx.inventory, ctx.pool, ctx.secrets);
    const s = r.scratch;
    const value = `restore ${(s.restoreMs / 1000).toFixed(1)} s, recovery ${(s.recoveryMs / 1000).toFixed(1)} s, WAL replayed ${s.wal.bytes === undefined ? '?' : `${(s.wal.bytes / 1048576).toFixed(1)} MiB`}`;
    if (!r.ok) return fail(r.problems.join('; '), { value, remedy: 'Read the scratch instance log (pitr-scratch.log on the backup host); check that archiving works (s4.archive.working).' });
    if (r.busy.length) {
      return warn(`markers exact, every other table equal; not comparable, written while T was taken: ${r.busy.join(', ')} (target ${r.target})`, {
        value,
        remedy: 'Nothing is wrong: the application was writing those tables at T. Run `dpgc verify --sprint 4` again when it writes less to compare them too.',
      });
    }
    return pass(value, 'markers exact, data equal', `target ${r.target}`);
  },
};

/** What the backup alerts read (templates/prometheus/rules/backup.yml): each must be scraped, or its alert can never fire. */
export const BACKUP_ALERT_INPUTS: RuleInput[] = [
  { what: "the repository's backups (backup host's node_exporter textfile)", expr: 'dpgc_backup_last_success_timestamp_seconds' },
  { what: 'the last backup attempt', expr: 'dpgc_backup_last_run_exit_code' },
  { what: 'the backup age thresholds', expr: 'dpgc_backup_max_age_seconds' },
  { what: "the archiver's failure state (dpgc's pg_archiver query)", expr: 'pg_archiver_failing' },
  { what: 'archive failures', expr: 'pg_stat_archiver_failed_count' },
  { what: 'the archive lag', expr: 'pg_archiver_oldest_ready_seconds' },
  { what: 'archive_timeout', expr: 'pg_settings_archive_timeout_seconds' },
  { what: "the repository's filesystem, matched with its threshold", expr: 'node_filesystem_avail_bytes and on (instance, mountpoint) dpgc_backup_repo_min_free_ratio' },
];

export const backupAlerts: Check = rulesCheck('s4.backup.alerts', 4, 'Backup alerts are loaded, evaluate without error, pass their promtool tests, and every series they read is scraped', BACKUP_ALERT_INPUTS);

export const backupDashboard: Check = dashboardsCheck('s4.grafana.backups', 4, 'The backups dashboard: every panel query returns data (or Grafana serves it)');
