#!/usr/bin/env node
// The RPO of a lost cluster, observed (bench/backup/run.sh calls this last: it destroys the cluster).
//
//   node bench/backup/rpo.mjs <inventory> <seconds of writing>
//
// A writer commits one row every 100 ms on the leader and records, for each
// acknowledged commit, its id, the time the acknowledgement arrived and the
// WAL insert position after it. Then every process of every database host is
// killed with SIGKILL at once (Patroni, its restart loop, PostgreSQL, and
// pgBackRest's async archive-push, which would otherwise go on pushing from
// the spool): the repository on the backup host is all that is left. The
// last archived commit is the last acknowledged row whose WAL position lies
// inside the newest segment `pgbackrest info` lists; RPO = the time between
// the last acknowledged commit and the last archived one. One JSON line on stdout.
import { readdir, readFile } from 'node:fs/promises';
import pg from 'pg';

const [config, secondsArg] = process.argv.slice(2);
const dist = new URL('../../dist/src/', import.meta.url);
const { loadInventory } = await import(new URL('config/load.js', dist));
const { Secrets, secretsPathFor } = await import(new URL('config/secrets.js', dist));
const { HostPool } = await import(new URL('hosts/pool.js', dist));
const { hostPaths } = await import(new URL('config/paths.js', dist));
const { silentLogger } = await import(new URL('output/log.js', dist));
const { killHost } = await import(new URL('drills/faults.js', dist));
const { currentLeader } = await import(new URL('components/cluster.js', dist));
const { repoNode, stanzaInfo } = await import(new URL('components/pgbackrest.js', dist));

const inventory = await loadInventory(config);
const { caPathsFor } = await import(new URL('components/ca.js', dist));
// The cluster CA, once sprint 5 made TLS required: without it a plaintext login is refused.
const secrets = new Secrets(secretsPathFor(inventory.file), { caCert: caPathsFor(inventory.file).cert });
const pool = new HostPool(inventory, { dryRun: false, logger: silentLogger });
const leader = await currentLeader(inventory);
const password = await secrets.get('postgres_superuser');
const c = new pg.Client({ host: leader.address, port: inventory.ports.postgres, user: 'postgres', password, database: 'postgres' });
await c.connect();
await c.query('CREATE TABLE IF NOT EXISTS public.rpo_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
const acked = [];
const until = Date.now() + Number(secondsArg ?? 90) * 1000;
while (Date.now() < until) {
  const r = await c.query('INSERT INTO public.rpo_probe DEFAULT VALUES RETURNING id, pg_current_wal_insert_lsn()::text AS lsn');
  acked.push({ id: Number(r.rows[0].id), at: Date.now(), lsn: r.rows[0].lsn });
  await new Promise((res) => setTimeout(res, 100));
}
const settings = (await c.query("SELECT current_setting('archive_timeout') AS t")).rows[0].t;
c.end().catch(() => undefined);

// Everything on every database host, at once.
const killedAt = Date.now();
const dbs = inventory.hosts.filter((h) => h.roles.includes('postgres'));
await Promise.all(dbs.map((h) => killHost({ inventory, secrets, pool }, h.name)));
// pgBackRest's async archive-push is detached from PostgreSQL: found by the host config it was started with.
const confs = new Set(dbs.map((h) => hostPaths(inventory, h).pgbackrestConf));
for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
  const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmd.startsWith('pgbackrest')) continue;
  const env = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
  if ([...confs].some((f) => env.includes(`PGBACKREST_CONFIG=${f}`) || cmd.includes(`--config=${f}`)) && cmd.includes('archive-push')) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
await new Promise((res) => setTimeout(res, 3000));

const info = await stanzaInfo(inventory, await repoNode(inventory, pool));
const max = info.archive?.[info.archive.length - 1]?.max;
// A segment's name: timeline, then the high and low parts of its first LSN (16 MiB segments).
const segEnd = max ? BigInt(`0x${max.slice(8, 16)}`) * 2n ** 32n + (BigInt(`0x${max.slice(16, 24)}`) + 1n) * 16n * 2n ** 20n : 0n;
const lsn = (l) => {
  const [hi, lo] = l.split('/');
  return BigInt(`0x${hi}`) * 2n ** 32n + BigInt(`0x${lo}`);
};
// The commit record follows the insert position by a few dozen bytes.
const archived = acked.filter((a) => lsn(a.lsn) + 128n <= segEnd);
const last = acked[acked.length - 1];
const lastArchived = archived[archived.length - 1];
process.stdout.write(
  `${JSON.stringify({
    archiveTimeout: settings,
    commits: acked.length,
    lastAcked: { id: last.id, at: new Date(last.at).toISOString(), lsn: last.lsn },
    lastArchivedSegment: max,
    lastArchived: lastArchived ? { id: lastArchived.id, at: new Date(lastArchived.at).toISOString(), lsn: lastArchived.lsn } : null,
    lostCommits: acked.length - archived.length,
    rpoSeconds: lastArchived ? (last.at - lastArchived.at) / 1000 : null,
    killedAt: new Date(killedAt).toISOString(),
  })}\n`,
);
process.exit(0);
