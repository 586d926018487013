import { relative } from 'node:path';
import type { HostSpec, Inventory } from '../config/schema.js';
import { hostPaths, type HostPaths } from '../config/paths.js';
import type { Node } from '../hosts/pool.js';
import type { Secrets } from '../config/secrets.js';
import { withClient } from '../db/client.js';
import { waitUntil } from '../wait.js';
import type { CertificateAuthority, CertRequest } from './ca.js';
import { superuserOn } from './endpoints.js';
import { localSql } from './postgres.js';

/**
 * PostgreSQL's TLS (sprint 5): every member serves a certificate from the
 * cluster's CA (components/ca.ts), its host name and address as SANs, with
 * TLS 1.2 at least. The key is made on the member, owned by postgres, and
 * never leaves it.
 *
 * Offered, not yet required: pg_hba still accepts a plaintext TCP login with
 * SCRAM, because not every client in the cluster speaks TLS yet (issue 14:
 * PgBouncer, the exporters, Patroni's replication with verify-full). libpq's
 * default `sslmode=prefer` already makes Patroni's replication and pg_rewind
 * use TLS once the server offers it, and dpgc's own connections verify it
 * (db/client.ts); PgBouncer 1.18 (`server_tls_sslmode` disable by default)
 * and the PostgreSQL exporter (`sslmode=disable`) do not.
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

