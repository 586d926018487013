import { archiveWorks, backupAlerts, backupDashboard, backupRecent, pgbackrestCheck, pitrDrill, repoEncrypted, scheduleFired } from '../src/checks/pgbackrest.js';
import { ensureBackupMetrics, ensureTextfileDirForRepo } from '../src/components/backup-metrics.js';
import { ensureSchedule, lastScheduledRun, waitForScheduledRun } from '../src/components/backup-schedule.js';
import { CertificateAuthority } from '../src/components/ca.js';
import { ensureNodeExporter, ensurePostgresExporter } from '../src/components/exporters.js';
import { ensurePackages } from '../src/components/ha-packages.js';
import { convergeDynamicConfig, observeDynamicConfig } from '../src/components/patroni-cluster.js';
import { ensurePatroniConfig, patroniCredentials } from '../src/components/patroni.js';
import { tlsRequired } from '../src/components/deployed.js';
import { memberTls } from '../src/components/patroni-tls.js';
import { rollingRestart, staleMembers } from '../src/components/patroni-upgrade.js';
import {
  ensureConf,
  ensureDirectories,
  ensureRepoUser,
  ensureServer,
  ensureStanza,
  ensureTls,
  PGBACKREST_PACKAGES,
  repoHost,
  serverService,
} from '../src/components/pgbackrest.js';
import { ensureCreateClusterDisabled, postgresPackages } from '../src/components/postgres.js';
import { ensurePrometheus, monitoredSprint } from '../src/components/prometheus.js';
import { notYetReachable } from '../src/plan/sql.js';
import { onHost, parallel, perHost, sequence, twoWay } from '../src/plan/step.js';
import type { Sprint } from './types.js';

/**
 * Sprint 4: backups that are proven by restores. A pgBackRest repository on
 * the backup host, reached over pgBackRest's own TLS server with certificates
 * from the cluster's CA; WAL archiving through Patroni's dynamic
 * configuration; scheduled backups from a standby; replicas rebuilt from the
 * repository; backup age and result exported to Prometheus with alerts on
 * them; and a point-in-time restore drill as a criterion.
 */
export const sprint4: Sprint = {
  id: 4,
  title: 'pgBackRest: encrypted repository over TLS, WAL archiving, scheduled backups from a standby, PITR proven',
  roles: ['postgres', 'backup'],

  tasks(ctx) {
    const inv = ctx.inventory;
    const node = (name: string) => ctx.pool.node(name);
    const repo = repoHost(inv);
    const hosts = [...ctx.pool.specs('postgres'), repo];
    const theCa = CertificateAuthority.lazy(ctx);
    let tls: ReturnType<typeof tlsRequired> | undefined;
    const peerTls = () => (tls ??= tlsRequired(ctx));
    const configChanged = new Map<string, boolean>();
    const wait = (title: string, host: string | undefined, apply: () => Promise<{ changed: boolean; note?: string }>) =>
      twoWay('wait', title, host, { apply, observe: async () => ({ changed: false, note: 'waits in a real run' }) });
    let firstRunSince: number | undefined;

    return [
      perHost(inv)(
        'Packages',
        hosts.map((h) =>
          onHost('package', `Install pgBackRest on ${h.name}${h.name === repo.name ? ' (and PostgreSQL, for scratch restores; python3, for the backup metrics)' : ''}`, h.name, async () => {
            const n = await node(h.name);
            if (h.name !== repo.name) return ensurePackages(n, PGBACKREST_PACKAGES);
            const cc = await ensureCreateClusterDisabled(n.host);
            // python3: the backup metrics script (components/backup-metrics.ts).
            return (await ensurePackages(n, [...PGBACKREST_PACKAGES, ...postgresPackages(inv.postgres.version), 'python3'])) || cc;
          }),
        ),
      ),
      onHost('command', `Create the repository's OS user ${'pgbackrest'} on ${repo.name}`, repo.name, async () => ensureRepoUser(await node(repo.name), inv.backup.repo_path)),
      parallel(
        'pgBackRest on every host',
        hosts.map((h) =>
          sequence(`pgBackRest on ${h.name}`, [
            onHost('command', `Create pgBackRest's directories on ${h.name}${h.name === repo.name ? ' (repository mode 0700)' : ''}`, h.name, async () => ensureDirectories(inv, await node(h.name))),
            onHost('file', `Issue ${h.name}'s pgBackRest TLS certificate from the cluster CA`, h.name, async () => {
              const r = await ensureTls(await theCa(), await node(h.name));
              if (r.changed) configChanged.set(h.name, true);
              return r;
            }),
            onHost('file', `Write pgbackrest.conf on ${h.name}`, h.name, async () => {
              const c = await ensureConf(inv, await node(h.name), ctx.secrets);
              if (c) configChanged.set(h.name, true);
              return c;
            }),
            onHost('service', `Start pgBackRest's TLS server on ${h.name} (:${inv.ports.pgbackrest})`, h.name, async () =>
              ensureServer(inv, await node(h.name), configChanged.get(h.name) ?? false),
            ),
          ]),
        ),
      ),
      onHost('command', `Create the stanza ${inv.cluster} in the repository on ${repo.name}`, repo.name, async () => {
        const n = await node(repo.name);
        // Under observation the servers may not run yet: then the stanza is simply still to come.
        if (n.host.dryRun && !(await n.services.status(serverService(inv, n))).running) return { changed: true, note: 'after the TLS servers start' };
        return ensureStanza(inv, n);
      }),
      parallel(
        'Patroni restores replicas from the repository',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Add the pgbackrest replica method to Patroni's config on ${h.name}`, h.name, async () =>
            ensurePatroniConfig(inv, await node(h.name), await patroniCredentials(ctx.secrets), await memberTls(inv, h, await peerTls())),
          ),
        ),
      ),
      twoWay('rest', `Archive WAL to the repository: archive_mode, archive_command, archive_timeout ${inv.backup.archive_timeout} s (Patroni's dynamic configuration)`, undefined, {
        apply: () => convergeDynamicConfig(inv, ctx.secrets, { archiving: true }),
        observe: () => notYetReachable(() => observeDynamicConfig(inv, { archiving: true })),
      }),
      twoWay('service', 'Restart members that do not archive yet, one at a time (replicas, a switchover, the old leader)', undefined, {
        apply: async () => {
          // Patroni applies a PATCH on its next loop; give it that loop before reading pending_restart.
          await new Promise((r) => setTimeout(r, (inv.timings.loop_wait + 1) * 1000));
          return rollingRestart(inv, ctx.secrets, ctx.pool, await staleMembers(inv, ctx.pool));
        },
        observe: () =>
          notYetReachable(async () => {
            const p = await staleMembers(inv, ctx.pool);
            return p.why.length ? { changed: true, would: p.why } : { changed: false };
          }),
      }),
      // Backup age and result for Prometheus, before the first scheduled run: every run refreshes them.
      sequence(`Backup metrics on ${repo.name}`, [
        onHost('service', `Let node_exporter on ${repo.name} read the backup metrics (textfile collector)`, repo.name, async () => {
          const n = await node(repo.name);
          const dir = await ensureTextfileDirForRepo(n);
          // One started without the textfile directory (by an older dpgc) is restarted: its command line says.
          const r = await ensureNodeExporter(ctx, n);
          return dir ? { ...r, changed: true } : r;
        }),
        onHost('file', `Install the backup metrics script on ${repo.name} and write the metrics from pgbackrest info`, repo.name, async () => ensureBackupMetrics(inv, await node(repo.name))),
      ]),
      parallel(
        'WAL archiver metrics',
        ctx.pool.specs('postgres').map((h) =>
          onHost('service', `Update postgres_exporter's queries on ${h.name} (the archiver's state, for the backup alerts)`, h.name, async () => ensurePostgresExporter(ctx, await node(h.name))),
        ),
      ),
      ...ctx.pool.specs('monitoring').map((h) =>
        onHost('file', `Validate the backup alert rules and their tests with promtool, install them on ${h.name}, reload Prometheus`, h.name, async () =>
          ensurePrometheus(ctx, await node(h.name), await monitoredSprint(ctx, 4)),
        ),
      ),
      onHost('service', `Schedule backups on ${repo.name} (${inv.backup.schedule}; ${ctx.pool.spec(repo.name).services === 'systemd' ? 'systemd timer' : 'supervised loop'})`, repo.name, async () => {
        const n = await node(repo.name);
        const since = Number((await n.host.exec(['date', '+%s'], { mutates: false })).stdout.trim());
        const r = await ensureSchedule(inv, n);
        if (r.started) firstRunSince = since;
        return r;
      }),
      wait(`Wait for the scheduled backup to finish on ${repo.name}`, repo.name, async () => {
        const n = await node(repo.name);
        const last = firstRunSince === undefined ? await lastScheduledRun(n) : undefined;
        if (firstRunSince === undefined && last) return { changed: false, note: `last run ${new Date(last.finished * 1000).toISOString()}, exit ${last.exit}` };
        const r = await waitForScheduledRun(n, firstRunSince ?? 0, 900_000);
        return { changed: false, note: `${r.type} backup, exit ${r.exit}, ${r.finished - r.started} s` };
      }),
    ];
  },

  criteria: [pgbackrestCheck, backupRecent, archiveWorks, scheduleFired, repoEncrypted, backupAlerts, backupDashboard, pitrDrill],
};
