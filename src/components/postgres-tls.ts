import { relative } from 'node:path';
import type { HostSpec, Inventory } from '../config/schema.js';
import { hostPaths, type HostPaths } from '../config/paths.js';
import type { Node } from '../hosts/pool.js';
import type { Secrets } from '../config/secrets.js';
import { withClient } from '../db/client.js';
import { waitUntil } from '../wait.js';
import type { CertificateAuthority, CertRequest } from './ca.js';
import { ROLES_DB, superuserOn } from './endpoints.js';
import { localSql } from './postgres.js';

/**
 * PostgreSQL's TLS (sprint 5): every member serves a certificate from the
 * cluster's CA (components/ca.ts), its host name and address as SANs, with
 * TLS 1.2 at least. The key is made on the member, owned by postgres, and
 * never leaves it.
 *
 * Used by every client dpgc configures: dpgc's own connections verify it
 * (db/client.ts), PgBouncer's server side and postgres_exporter connect
 * verify-full once the cluster serves it (deployed.ts clientTls). Then it is
 * required: Patroni's file gets hostssl-only pg_hba and verify-full for
 * replication and pg_rewind (patroni.ts PatroniTls), and PgBouncer requires
 * it of its clients.
 */
export const PG_CERT = 'postgres';

/**
 * The member's name and address, and those of the HAProxy hosts: HAProxy
 * passes TLS through to whichever member is the leader (or a replica, on
 * the read port), so a client that dialled HAProxy checks the member's
 * certificate against HAProxy's address. Any member may become the leader,
 * so every member names them.
 */
export function pgCertRequest(inv: Pick<Inventory, 'hosts'>, spec: Pick<HostSpec, 'name' | 'address'>): CertRequest {
  const routers = inv.hosts.filter((h) => h.roles.includes('haproxy') && h.name !== spec.name);
  return { name: PG_CERT, cn: spec.name, dns: [spec.name, ...routers.map((h) => h.name)], ips: [spec.address, ...routers.map((h) => h.address)], usage: ['server'] };
}

export async function ensurePgCert(ca: CertificateAuthority, inv: Pick<Inventory, 'hosts'>, node: Pick<Node, 'host' | 'paths' | 'spec'>): Promise<{ changed: boolean; note?: string }> {
  const r = await ca.ensureHostCert(node.host, node.paths.tlsDir, pgCertRequest(inv, node.spec), 'postgres');
  return { changed: r.changed, ...(r.reason ? { note: `issued: ${r.reason}` } : {}) };
}

/**
 * The ssl parameters, for Patroni's dynamic configuration (one for every
 * member). Each lab host has a root of its own, so an absolute path would
 * name one host's file; PostgreSQL reads a relative ssl_*_file relative to
 * its data directory, and config/paths.ts puts the data directory and the
 * TLS directory under the same root, so one relative path names each
 * member's own file, on real hosts and in the lab alike.
 */
export function tlsParameters(paths: Pick<HostPaths, 'pgData' | 'tlsDir'>): Record<string, string> {
  const rel = (file: string) => relative(paths.pgData, `${paths.tlsDir}/${file}`);
  return {
    ssl: 'on',
    ssl_cert_file: rel(`${PG_CERT}.crt`),
    ssl_key_file: rel(`${PG_CERT}.key`),
    ssl_min_protocol_version: 'TLSv1.2',
  };
}

/** tlsParameters for the inventory's PostgreSQL version (the root does not change a relative path). */
export function clusterTlsParameters(inv: Pick<Inventory, 'postgres'>): Record<string, string> {
  return tlsParameters(hostPaths({ postgres: inv.postgres, cluster: '' }, { root: '', name: '' }));
}

type Ssl = Pick<Inventory, 'hosts' | 'ports' | 'postgres'>;

/** `SHOW ssl` on one member ('on' or 'off'): what the server offers, asked over whatever the client can get. */
export async function sslOn(inv: Ssl, secrets: Pick<Secrets, 'get'>, spec: HostSpec): Promise<boolean> {
  return withClient(secrets, superuserOn(inv, spec), async (c) => (await c.query<{ ssl: string }>('SHOW ssl')).rows[0]?.ssl === 'on');
}

/**
 * After a new certificate on a member that already serves TLS: PostgreSQL
 * reads its certificate files again on a reload only. Over the member's own
 * socket, as postgres: a TCP client would check the certificate being
 * replaced, and refuse it when it is the reason for the new one.
 */
export async function reloadIfServing(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'host' | 'paths'>): Promise<boolean> {
  const r = await localSql(inv, node, "SELECT CASE WHEN current_setting('ssl') = 'on' THEN pg_reload_conf() ELSE false END");
  return r === 't';
}

/** Until every member offers TLS: Patroni applies a PATCH on each member's next loop, as a reload. */
export async function waitForTls(inv: Ssl & Pick<Inventory, 'timings'>, secrets: Pick<Secrets, 'get'>, members: HostSpec[]): Promise<{ changed: boolean; note: string }> {
  const timeoutMs = (3 * inv.timings.loop_wait + 10) * 1000;
  const t0 = Date.now();
  await waitUntil(
    async (seen) => {
      const off = (await Promise.all(members.map(async (m) => ((await sslOn(inv, secrets, m)) ? undefined : m.name)))).filter((x): x is string => x !== undefined);
      if (!off.length) return true;
      seen(`not yet serving TLS: ${off.join(', ')}`);
      return undefined;
    },
    { timeoutMs, everyMs: 500, retryErrors: true },
    'every member serving TLS',
  );
  return { changed: false, note: `every member serves TLS (${((Date.now() - t0) / 1000).toFixed(1)} s after the change)` };
}

/** Plaintext TCP sessions on one member, grouped by who holds them. */
export interface PlainSessions {
  host: string;
  user: string;
  from: string;
  /** application_name, or the backend type (walsender) when there is none. */
  what: string;
  n: number;
}

/**
 * Every TCP session on each member, encrypted or not (pg_stat_ssl beside
 * pg_stat_activity; sockets, which never leave the host, left out). dpgc's
 * own session asking is one of them, over TLS itself.
 */
export async function sessionsByTls(inv: Pick<Inventory, 'ports'>, secrets: Pick<Secrets, 'get'>, members: HostSpec[]): Promise<{ plain: PlainSessions[]; tls: number }> {
  const per = await Promise.all(
    members.map((m) =>
      withClient(secrets, superuserOn(inv, m), async (c) =>
        (
          await c.query<{ user: string | null; from: string; what: string; ssl: boolean; n: number }>(
            `SELECT a.usename AS user, host(a.client_addr) AS from, coalesce(nullif(a.application_name, ''), a.backend_type) AS what, s.ssl, count(*)::int AS n
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3`,
          )
        ).rows.map((r) => ({ ...r, host: m.name })),
      ),
    ),
  );
  const rows = per.flat();
  return {
    plain: rows.filter((r) => !r.ssl).map((r) => ({ host: r.host, user: r.user ?? '?', from: r.from, what: r.what, n: r.n })),
    tls: rows.filter((r) => r.ssl).reduce((a, r) => a + r.n, 0),
  };
}

export const describePlain = (p: PlainSessions): string => `${p.host}: ${p.n} plaintext session(s) of ${p.user} from ${p.from} (${p.what})`;

/**
 * A replica whose stream from the leader began before the leader served TLS
 * keeps it in plaintext for as long as it lasts: the leader's WAL sender for
 * it is ended, and the replica connects again, now over TLS (libpq's
 * sslmode=prefer in Patroni's primary_conninfo), within half a second in the
 * lab. One replica at a time, each streaming again before the next: a
 * synchronous standby's commits wait for it meanwhile. (pg_terminate_backend
 * refuses the replica's WAL receiver: it is not a backend.)
 */
export async function restreamOverTls(inv: Pick<Inventory, 'hosts' | 'ports' | 'timings'>, secrets: Pick<Secrets, 'get'>, leader: HostSpec): Promise<{ changed: boolean; note?: string }> {
  const replicas = (await plaintextStreams(inv, secrets, leader)).map((p) => p.replica);
  for (const r of replicas) {
    await withClient(secrets, superuserOn(inv, leader), (c) =>
      c.query("SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.backend_type = 'walsender' AND a.application_name = $1 AND NOT s.ssl", [r.name]),
    );
    await waitUntil(
      async (seen) => {
        const ssl = await withClient(secrets, superuserOn(inv, leader), async (c) =>
          (await c.query<{ ssl: boolean }>("SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = $1 AND r.state = 'streaming'", [r.name])).rows[0]?.ssl,
        );
        if (ssl === true) return true;
        seen(ssl === false ? `${r.name} streaming in plaintext` : `${r.name} not streaming yet`);
        return undefined;
      },
      { timeoutMs: (inv.timings.loop_wait + 20) * 1000, everyMs: 250, retryErrors: true },
      `${r.name} streaming from ${leader.name} over TLS`,
    );
  }
  return replicas.length ? { changed: true, note: `re-streamed over TLS: ${replicas.map((r) => r.name).join(', ')}` } : { changed: false };
}

/**
 * The replicas streaming from the leader in plaintext, with their sessions.
 * Patroni names each stream after its member (application_name in
 * primary_conninfo); in the lab every stream comes from 127.0.0.1, so the
 * name, not the address, says whose it is.
 */
export async function plaintextStreams(inv: Pick<Inventory, 'hosts' | 'ports'>, secrets: Pick<Secrets, 'get'>, leader: HostSpec): Promise<{ replica: HostSpec; session: PlainSessions }[]> {
  const { plain } = await sessionsByTls(inv, secrets, [leader]);
  return inv.hosts.flatMap((h) => {
    const session = h.roles.includes('postgres') && h.name !== leader.name ? plain.find((p) => p.user === ROLES_DB.replication.user && p.what === h.name) : undefined;
    return session ? [{ replica: h, session }] : [];
  });
}

/** One member's WAL receiver, as the member itself reports it (pg_stat_wal_receiver; the leader has none). */
export interface ReplicaStream {
  member: string;
  /** 'streaming', another receiver state, or undefined on the leader and on a replica with no receiver. */
  status?: string;
  recovery: boolean;
  /** The receiver's connection names sslmode=verify-full (the password in it is shown as ********). */
  verifyFull: boolean;
}

export async function replicaStreams(inv: Pick<Inventory, 'ports'>, secrets: Pick<Secrets, 'get'>, members: HostSpec[]): Promise<ReplicaStream[]> {
  return Promise.all(
    members.map((m) =>
      withClient(secrets, superuserOn(inv, m), async (c) => {
        const r = (
          await c.query<{ recovery: boolean; status: string | null; conninfo: string | null }>(
            'SELECT pg_is_in_recovery() AS recovery, w.status, w.conninfo FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true',
          )
        ).rows[0]!;
        return { member: m.name, recovery: r.recovery, verifyFull: /(^|\s)sslmode=verify-full(\s|$)/.test(r.conninfo ?? ''), ...(r.status ? { status: r.status } : {}) };
      }),
    ),
  );
}

/** What is wrong with a replica's stream once TLS is required: not streaming, or streaming without verify-full. */
export function streamProblem(s: ReplicaStream): string | undefined {
  if (!s.recovery) return undefined;
  if (s.status !== 'streaming') return `${s.member}: not streaming from the leader (${s.status ?? 'no WAL receiver'})`;
  return s.verifyFull ? undefined : `${s.member}: streams from the leader without sslmode=verify-full`;
}

/**
 * Until every replica streams with verify-full: Patroni re-reads its file on
 * the reload, on its next loop, and writes the new primary_conninfo with a
 * PostgreSQL reload; the WAL receiver then connects again.
 */
export async function waitForVerifiedStreams(inv: Pick<Inventory, 'ports' | 'timings'>, secrets: Pick<Secrets, 'get'>, members: HostSpec[]): Promise<{ changed: boolean; note: string }> {
  const t0 = Date.now();
  await waitUntil(
    async (seen) => {
      const problems = (await replicaStreams(inv, secrets, members)).map(streamProblem).filter((x): x is string => x !== undefined);
      if (!problems.length) return true;
      seen(problems.join('; '));
      return undefined;
    },
    { timeoutMs: (3 * inv.timings.loop_wait + 20) * 1000, everyMs: 500, retryErrors: true },
    'every replica streaming with verify-full',
  );
  return { changed: false, note: `every replica streams with verify-full (${((Date.now() - t0) / 1000).toFixed(1)} s)` };
}
