import { alertsReachPerson } from './alerting.js';
import { clusterCertificates, expiringCerts, nearestEnd, RENEW_BEFORE_DAYS } from '../components/ca.js';
import { currentLeader } from '../components/cluster.js';
import { lastDrills } from '../components/drill-log.js';
import { pgbouncerAdmin, superuserOn } from '../components/endpoints.js';
import { rest, restTarget } from '../components/patroni.js';
import { withClient } from '../db/client.js';
import { fail, pass, type Check } from './types.js';

/**
 * Production items that no single sprint owns: `dpgc readiness` measures them
 * beside every sprint's criteria. Their ids start with `r.` and name their
 * area (`r.auth.…`, `r.drills.…`); each reads the live cluster, like every
 * other check, so a waiver in the inventory is the only way to accept one.
 */

const DAY_MS = 86_400_000;

/** 255.255.255.0 → 24 (pg_hba_file_rules splits `10.0.0.0/24` into address and netmask); IPv6 masks too. */
export function prefixOf(netmask: string): number {
  if (netmask.includes(':')) {
    return netmask.split(':').filter(Boolean).reduce((a, g) => a + [...Number.parseInt(g, 16).toString(2)].filter((b) => b === '1').length, 0);
  }
  return netmask.split('.').reduce((a, o) => a + [...Number(o).toString(2)].filter((b) => b === '1').length, 0);
}

/** Pure: a pg_hba rule or a stored password that lets a client in without SCRAM. */
export function weakAuth(rules: { type: string; database: string[] | null; user_name: string[] | null; address: string | null; netmask: string | null; auth_method: string; line_number: number }[]): string[] {
  const WEAK = new Set(['trust', 'md5', 'password', 'ident']);
  return rules
    .filter((r) => WEAK.has(r.auth_method))
    .map((r) => `pg_hba.conf line ${r.line_number}: ${r.type} ${(r.database ?? []).join(',')} ${(r.user_name ?? []).join(',')}${r.address ? ` ${r.address}${r.netmask ? `/${prefixOf(r.netmask)}` : ''}` : ''} ${r.auth_method}`);
}

export const noWeakAuth: Check = {
  id: 'r.auth.scram-only',
  title: 'No trust, md5, password or ident authentication anywhere, and every stored password a SCRAM verifier',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const inv = ctx.inventory;
    const problems: string[] = [];
    await Promise.all(
      ctx.pool.specs('postgres').map(async (h) => {
        try {
          await withClient(ctx.secrets, superuserOn(inv, h), async (c) => {
            const rules = (await c.query<Parameters<typeof weakAuth>[0][number]>('SELECT type, database, user_name, address, netmask, auth_method, line_number FROM pg_hba_file_rules WHERE error IS NULL')).rows;
            for (const w of weakAuth(rules)) problems.push(`${h.name}: ${w}`);
            const enc = (await c.query<{ v: string }>(`SELECT current_setting('password_encryption') AS v`)).rows[0]?.v;
            if (enc !== 'scram-sha-256') problems.push(`${h.name}: password_encryption is ${enc}`);
            const md5 = (await c.query<{ rolname: string }>(`SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%' ORDER BY 1`)).rows;
            if (md5.length) problems.push(`${h.name}: roles with a non-SCRAM password: ${md5.map((r) => r.rolname).join(', ')}`);
          });
        } catch (e) {
          problems.push(`${h.name}: ${(e as Error).message.split('\n')[0]}`);
        }
      }),
    );
    problems.sort();
    return problems.length
      ? fail(problems.join('\n'), {
          value: `${problems.length} problem(s)`,
          threshold: 'SCRAM only',
          remedy: 'Remove the lines named from pg_hba.conf (dpgc renders none of them: something else added them), and set a new password for each role named (`ALTER ROLE … PASSWORD …` with password_encryption = scram-sha-256). Then re-run `dpgc readiness`.',
        })
      : pass('SCRAM only', 'no weak method');
  },
};

export const synchronousOn: Check = {
  id: 'r.replication.synchronous',
  title: 'Synchronous replication is on in Patroni’s running configuration: an acknowledged commit is on two nodes',
  sprint: 3,
  kind: 'state',
  async run(ctx) {
    const leader = await currentLeader(ctx.inventory);
    const cfg = (await rest<{ synchronous_mode?: boolean; synchronous_mode_strict?: boolean }>(restTarget(ctx.inventory, leader), 'GET', '/config')).body;
    if (cfg.synchronous_mode !== true) {
      return fail('synchronous_mode is off in Patroni’s dynamic configuration: a failover may lose acknowledged commits', {
        value: 'off',
        threshold: 'on',
        remedy: 'Someone turned it off outside dpgc (patronictl edit-config or PATCH /config): run `dpgc sprint 3`, which converges Patroni’s dynamic configuration back to synchronous mode.',
      });
    }
    return pass(cfg.synchronous_mode_strict ? 'on (strict)' : 'on', 'on');
  },
};

/** Pure: server connections PgBouncer may open to the primary against what PostgreSQL admits. */
export function poolCapacity(o: { maxConnections: number; reserved: number; headroom: number; pools: { host: string; alias: string; size: number }[] }): { need: number; room: number; ok: boolean } {
  const need = o.pools.reduce((a, p) => a + p.size, 0);
  const room = o.maxConnections - o.reserved - o.headroom;
  return { need, room, ok: need <= room };
}

/** Connections dpgc itself keeps beside PgBouncer's: Patroni, exporters, checks, an operator's psql. */
export const CONNECTION_HEADROOM = 10;

export const pgbouncerCapacity: Check = {
  id: 'r.pgbouncer.capacity',
  title: 'PgBouncer’s pools fit in the primary’s max_connections (pool + reserve for every database that routes to the primary)',
  sprint: 1,
  kind: 'state',
  async run(ctx) {
    const inv = ctx.inventory;
    const leader = await currentLeader(inv).catch(() => ctx.pool.specs('postgres')[0]!);
    const { maxConnections, reserved } = await withClient(ctx.secrets, superuserOn(inv, leader), async (c) => {
      const r = (await c.query<{ m: string; r: string }>(`SELECT current_setting('max_connections') AS m, current_setting('superuser_reserved_connections') AS r`)).rows[0]!;
      return { maxConnections: Number(r.m), reserved: Number(r.r) };
    });
    const primaryPorts = new Set([inv.ports.haproxy_primary, inv.ports.postgres]);
    const pools: { host: string; alias: string; size: number }[] = [];
    for (const s of ctx.pool.specs('pgbouncer')) {
      await withClient(ctx.secrets, pgbouncerAdmin(inv, s), async (c) => {
        const config = new Map((await c.query<{ key: string; value: string }>('SHOW CONFIG')).rows.map((r) => [r.key, r.value]));
        const dflt = Number(config.get('default_pool_size') ?? 0);
        const reserve = Number(config.get('reserve_pool_size') ?? 0);
        for (const d of (await c.query<{ name: string; port: string | number; pool_size: string | number | null; reserve_pool: string | number | null }>('SHOW DATABASES')).rows) {
          if (d.name === 'pgbouncer' || !primaryPorts.has(Number(d.port))) continue;
          const size = d.pool_size === null || Number(d.pool_size) < 0 ? dflt : Number(d.pool_size);
          const res = d.reserve_pool === null || Number(d.reserve_pool) < 0 ? reserve : Number(d.reserve_pool);
          pools.push({ host: s.name, alias: d.name, size: size + res });
        }
      });
    }
    const r = poolCapacity({ maxConnections, reserved, headroom: CONNECTION_HEADROOM, pools });
    const value = `${r.need} of ${r.room}`;
    if (!r.ok) {
      return fail(`PgBouncer may open ${r.need} server connections to the primary (${pools.map((p) => `${p.host}/${p.alias} ${p.size}`).join(', ')}); max_connections ${maxConnections} leaves ${r.room} after ${reserved} reserved for superusers and ${CONNECTION_HEADROOM} for Patroni, exporters and operators`, {
        value,
        threshold: `≤ ${r.room}`,
        remedy: 'Lower `pgbouncer.default_pool_size` / `reserve_pool_size`, or raise `postgres.max_connections`; then run `dpgc sprint 1` (and `dpgc sprint 3` on a cluster).',
      });
    }
    return pass(value, `≤ ${r.room} server connections`);
  },
};

/** Pure: `df -P` output (1024-byte blocks) to free space per mount. */
export function parseDf(text: string): { size: number; avail: number; mount: string }[] {
  return text
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 6)
    .map((f) => ({ size: Number(f[1]), avail: Number(f[3]), mount: f.slice(5).join(' ') }));
}

export const diskHeadroom: Check = {
  id: 'r.disk.headroom',
  title: 'Every data directory and WAL directory has free space left on its volume',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const min = ctx.inventory.readiness.disk_min_free_pct;
    const problems: string[] = [];
    let lowest = 100;
    await Promise.all(
      ctx.pool.specs('postgres').map(async (h) => {
        const n = await ctx.pool.node(h.name);
        // pg_wal may be a symlink to another volume: df follows the path to where the bytes go.
        const dirs = [n.paths.pgData, `${n.paths.pgData}/pg_wal/.`];
        const out = await n.host.exec(['df', '-P', ...dirs]).catch((e: Error) => e);
        if (out instanceof Error) return void problems.push(`${h.name}: cannot read free space (${out.message.split('\n')[0]})`);
        parseDf(out.stdout).forEach((d, i) => {
          const pct = d.size ? (100 * d.avail) / d.size : 0;
          lowest = Math.min(lowest, pct);
          if (pct < min) problems.push(`${h.name}: ${i === 0 ? 'data' : 'WAL'} directory on ${d.mount} has ${pct.toFixed(1)}% free (${(d.avail / 1024 / 1024).toFixed(1)} GiB)`);
        });
      }),
    );
    problems.sort();
    return problems.length
      ? fail([...new Set(problems)].join('\n'), {
          value: `${lowest.toFixed(1)}% free`,
          threshold: `≥ ${min}% free`,
          remedy: 'Free space or grow the volume before it fills: a full WAL volume stops the primary. (`readiness.disk_min_free_pct` sets the threshold.)',
        })
      : pass(`${lowest.toFixed(1)}% free at the lowest`, `≥ ${min}% free`);
  },
};

/** A drill of `mode` passed within the inventory's window: proof that failover works is perishable. */
export function recentDrill(mode: 'kill' | 'switchover'): Check {
  return {
    id: `r.drills.${mode}`,
    title: `A ${mode} failover drill passed on this cluster recently`,
    sprint: 3,
    kind: 'state',
    async run(ctx) {
      const maxDays = ctx.inventory.readiness.drill_max_age_days;
      const rec = (await lastDrills(ctx.inventory, ctx.secrets)).get(mode);
      const remedy = `Run \`dpgc failover-test --mode ${mode}\` (it records its result in the cluster), then \`dpgc readiness\` again.`;
      if (!rec?.lastPassed) {
        return fail(rec ? `the last ${mode} drill (${rec.last.at.toISOString()}) failed: ${rec.last.summary}` : `no ${mode} drill was ever recorded on this cluster`, { value: 'none passed', threshold: `within ${maxDays} days`, remedy });
      }
      const ageDays = (Date.now() - rec.lastPassed.at.getTime()) / DAY_MS;
      const value = `${ageDays < 1 ? `${(ageDays * 24).toFixed(1)} h` : `${ageDays.toFixed(0)} days`} ago`;
      if (ageDays > maxDays) return fail(`the last passed ${mode} drill was ${value} (${rec.lastPassed.at.toISOString()}): ${rec.lastPassed.summary}`, { value, threshold: `within ${maxDays} days`, remedy });
      if (!rec.last.passed) return fail(`the newest ${mode} drill (${rec.last.at.toISOString()}) failed: ${rec.last.summary}`, { value, threshold: 'the newest drill passed', remedy });
      return pass(value, `within ${maxDays} days`, rec.lastPassed.summary);
    },
  };
}

/** The production items, in the order the report lists them. */
/**
 * Every certificate dpgc issued, on every host, and the CA's own on the
 * control machine, valid for RENEW_BEFORE_DAYS or more. The sprints re-issue
 * a certificate that nears its end; this is the proof they ran recently
 * enough, read from the files the servers load.
 */
export const certificatesValid: Check = {
  id: 'r.certs.valid',
  title: `Every certificate dpgc issued, and its CA, is valid for ${RENEW_BEFORE_DAYS} days or more`,
  sprint: 4,
  kind: 'state',
  async run(ctx) {
    const now = new Date();
    const certs = await clusterCertificates(ctx.inventory, ctx.pool, ctx.logger);
    const threshold = `≥ ${RENEW_BEFORE_DAYS} days`;
    if (!certs.length) return fail('no certificate found: the cluster has no TLS yet', { threshold, remedy: 'Run `dpgc sprint 4` (pgBackRest’s TLS servers are the first certificates dpgc issues).' });
    const soon = expiringCerts(certs, now);
    const nearest = nearestEnd(certs)?.notAfter;
    const value = nearest ? `nearest ${nearest.toISOString().slice(0, 10)}` : 'unreadable';
    if (soon.length) {
      return fail(soon.join('\n'), { value, threshold, remedy: 'Run the sprint that issued them again (`dpgc sprint 4` for pgBackRest’s, `dpgc sprint 5` for PostgreSQL’s): it re-issues any certificate within 30 days of its end, and the CA’s own.' });
    }
    return pass(`${certs.length} certificates, ${value}`, threshold);
  },
};

export function readinessItems(): Check[] {
  return [noWeakAuth, synchronousOn, pgbouncerCapacity, diskHeadroom, certificatesValid, alertsReachPerson, recentDrill('switchover'), recentDrill('kill')];
}
