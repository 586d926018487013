import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { CertificateAuthority, caPathsFor, controlClientFiles, RENEW_BEFORE_DAYS } from '../components/ca.js';
import { etcdctlNode, etcdHosts, liveClientEndpoints, memberList } from '../components/etcd.js';
import { silentLogger } from '../output/log.js';
import { pgbouncerAdmin, superuserOn } from '../components/endpoints.js';
import { describePlain, replicaStreams, sessionsByTls, streamProblem } from '../components/postgres-tls.js';
import { PLAINTEXT_REFUSED, withClient, type Client, type ConnectOptions, type Endpoint } from '../db/client.js';
import { currentLeader } from '../components/cluster.js';
import { BACKENDS, showStat, tlsCheckedIn, upServers } from '../components/haproxy.js';
import { tlsProbe, webRequest } from '../components/web-client.js';
import { pgHosts } from './common.js';
import { fail, pass, type Check } from './types.js';

const REPAIR = 'Run `dpgc sprint 5` again: it issues any missing or ending certificate and puts TLS back into Patroni’s configuration (a reload, no restart).';
const ACCEPTED = ['TLSv1.2', 'TLSv1.3'];

/** The certificate the server presented on this connection (node-pg keeps its TLS socket as `connection.stream`). */
function peerCertificate(c: Client): { validTo: Date } | undefined {
  const stream = (c as unknown as { connection?: { stream?: Partial<TLSSocket> } }).connection?.stream;
  const cert = stream?.getPeerCertificate?.();
  return cert?.valid_to ? { validTo: new Date(cert.valid_to) } : undefined;
}

/**
 * Every member serves TLS as a careful client demands it: a connection that
 * verifies the server's certificate against the cluster's CA and the address
 * it dialled (verify-full) logs in, negotiates TLS 1.2 or later, and the
 * certificate presented is valid for 30 days or more; the server refuses
 * anything older than TLS 1.2.
 */
export const pgTls: Check = {
  id: 's5.tls.postgres',
  title: 'Every member serves TLS 1.2+ with a certificate from the cluster’s CA, verified by name and valid ≥ 30 days',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const ca = await ctx.secrets.clusterCa();
    if (ca === undefined) return fail(`the cluster's CA certificate ${caPathsFor(ctx.inventory.file).cert} does not exist`, { remedy: 'Run `dpgc sprint 4` (it creates the CA), then `dpgc sprint 5`.' });
    const problems: string[] = [];
    const seen: { host: string; version: string; validTo?: Date }[] = [];
    await Promise.all(
      pgHosts(ctx).map(async (h) => {
        try {
          await withClient(
            ctx.secrets,
            superuserOn(ctx.inventory, h),
            async (c) => {
              const r = (
                await c.query<{ ssl: boolean | null; version: string | null; min: string }>(
                  "SELECT s.ssl, s.version, current_setting('ssl_min_protocol_version') AS min FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
                )
              ).rows[0];
              const cert = peerCertificate(c);
              seen.push({ host: h.name, version: r?.version ?? '?', ...(cert ? { validTo: cert.validTo } : {}) });
              if (!r?.ssl) problems.push(`${h.name}: the connection is not encrypted`);
              else if (!ACCEPTED.includes(r.version ?? '')) problems.push(`${h.name}: negotiated ${r.version}, want TLS 1.2 or later`);
              if (!ACCEPTED.includes(r?.min ?? '')) problems.push(`${h.name}: ssl_min_protocol_version is ${r?.min}, want TLSv1.2 or later`);
              const days = cert ? (cert.validTo.getTime() - Date.now()) / 86_400_000 : undefined;
              if (days !== undefined && days < RENEW_BEFORE_DAYS) problems.push(`${h.name}: its certificate ends ${cert!.validTo.toISOString().slice(0, 10)} (${Math.floor(days)} days)`);
            },
            { tls: { ca } },
          );
        } catch (e) {
          // "The server does not support SSL connections", "self-signed certificate", "Hostname/IP does not match…".
          problems.push(`${h.name}: ${(e as Error).message.replace(/^.*?: cannot connect to [^:]+:\d+\/\S+: /, '')}`);
        }
      }),
    );
    const threshold = `verify-full against the cluster CA, TLS 1.2+, ≥ ${RENEW_BEFORE_DAYS} days`;
    if (problems.length) return fail(problems.sort().join('\n'), { value: `${problems.length} problem(s)`, threshold, remedy: REPAIR });
    const nearest = Math.min(...seen.map((s) => s.validTo?.getTime() ?? Infinity));
    const versions = [...new Set(seen.map((s) => s.version))].join(', ');
    return pass(`${seen.length} members, ${versions}${Number.isFinite(nearest) ? `, nearest certificate end ${new Date(nearest).toISOString().slice(0, 10)}` : ''}`, threshold);
  },
};

/**
 * Nothing on the wire to a member is plaintext: every TCP session on every
 * member (PgBouncer's server connections, postgres_exporter, the replicas'
 * streams, dpgc itself) is encrypted. What a client can still do (pg_hba
 * accepts plaintext until TLS is required) is not measured here; what every
 * client in the cluster does, is.
 */
export const tlsSessions: Check = {
  id: 's5.tls.sessions',
  title: 'Every TCP session on every member is encrypted: PgBouncer, the exporters, replication, dpgc',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const s = await sessionsByTls(ctx.inventory, ctx.secrets, pgHosts(ctx));
    if (s.plain.length) {
      return fail(s.plain.map(describePlain).join('\n'), {
        value: `${s.plain.reduce((a, p) => a + p.n, 0)} plaintext of ${s.tls + s.plain.reduce((a, p) => a + p.n, 0)}`,
        remedy: 'Run `dpgc sprint 5` again: it configures PgBouncer and postgres_exporter for TLS, reopens their connections, and restarts a plaintext replication stream over TLS.',
      });
    }
    return pass(`${s.tls} sessions, all TLS`, 'no plaintext TCP session');
  },
};


/**
 * The user the plaintext logins to the members are made as: no role has it, and the password is thrown
 * away, so a plaintext rule that lets it through gives away nothing (not even a SCRAM exchange for a real
 * role), and its log lines are told apart from someone knocking: the mtail program skips them, or every
 * `dpgc verify` would add to PostgresAuthFailureBurst (two per member per measurement).
 */
export const PLAINTEXT_PROBE_USER = 'dpgc_plaintext_probe';
/** Past pg_hba, to authentication or the role lookup: a rule let the plaintext login through. */
const PAST_PG_HBA = /password authentication failed|authentication failed for user|role "dpgc_plaintext_probe" does not exist/;

/**
 * TLS is required, not only offered: a plaintext login to every member (an
 * ordinary one and a replication one, as a standby opens) and to every
 * PgBouncer is refused, and every replica streams from the leader with
 * verify-full against the cluster CA.
 */
export const plaintextRefused: Check = {
  id: 's5.tls.required',
  title: 'Plaintext is refused: a login without TLS to any member (replication too) or to PgBouncer fails; every replica streams verify-full',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const inv = ctx.inventory;
    const throwaway = randomBytes(24).toString('base64url');
    const probe: Pick<typeof ctx.secrets, 'get'> = { get: async () => throwaway };
    const tries: { what: string; ep: Endpoint; opts: ConnectOptions; refused: RegExp; creds?: typeof probe }[] = [
      ...pgHosts(ctx).flatMap((h) => [
        { what: `${h.name} (${h.address}:${inv.ports.postgres})`, ep: { ...superuserOn(inv, h), user: PLAINTEXT_PROBE_USER }, opts: {}, refused: PLAINTEXT_REFUSED.postgres, creds: probe },
        {
          what: `${h.name} (${h.address}:${inv.ports.postgres}, replication)`,
          ep: { ...superuserOn(inv, h), user: PLAINTEXT_PROBE_USER },
          opts: { replication: true },
          refused: PLAINTEXT_REFUSED.postgres,
          creds: probe,
        },
      ]),
      ...inv.hosts
        .filter((h) => h.roles.includes('pgbouncer'))
        // The admin console: PgBouncer answers it itself, so what is measured is PgBouncer's client side alone.
        .map((h) => ({ what: `PgBouncer on ${h.name} (${h.address}:${inv.ports.pgbouncer})`, ep: pgbouncerAdmin(inv, h), opts: {}, refused: PLAINTEXT_REFUSED.pgbouncer })),
    ];
    const problems = (
      await Promise.all(
        tries.map(async (t) => {
          try {
            await withClient(t.creds ?? ctx.secrets, t.ep, async () => {}, { ...t.opts, tls: false, timeoutMs: 15_000 });
            return `${t.what} accepts a login without TLS`;
          } catch (e) {
            const msg = (e as Error).message;
            if (t.refused.test(msg)) return undefined;
            // Refused only for the probe's made-up user or password: pg_hba itself let plaintext through.
            if (t.creds && PAST_PG_HBA.test(msg)) return `${t.what} accepts a login without TLS`;
            return `${t.what}: cannot tell, the plaintext login failed for another reason: ${msg.replace(/^.*?: cannot connect to [^:]+:\d+\/\S+: /, '')}`;
          }
        }),
      )
    ).filter((x): x is string => x !== undefined);
    const streams = await replicaStreams(inv, ctx.secrets, pgHosts(ctx));
    problems.push(...streams.map(streamProblem).filter((x): x is string => x !== undefined));
    if (problems.length) {
      return fail(problems.join('\n'), {
        value: `${problems.length} problem(s)`,
        threshold: 'plaintext refused everywhere',
        remedy: 'Run `dpgc sprint 5` again: it writes pg_hba (hostssl only), Patroni\'s verify-full replication and PgBouncer\'s client TLS back as rendered, and reloads them.',
      });
    }
    return pass(`${tries.length} plaintext logins refused; ${streams.filter((x) => x.recovery).length} replicas stream verify-full`, 'plaintext refused everywhere');
  },
};

/**
 * Patroni's REST API serves TLS only, on every member: a plaintext request
 * gets no HTTP answer (Patroni with a certfile closes it), a request verified
 * against the cluster CA and the member's address gets GET /patroni's 200 over
 * a certificate valid 30 days or more. Every HAProxy checks every member with
 * check-ssl (its live configuration), no check fails in the TLS layer, and
 * its primary port still reaches the leader alone.
 */
export const patroniRestTls: Check = {
  id: 's5.tls.patroni',
  title: 'Patroni’s REST API serves TLS only on every member (plaintext gets no answer), verified against the cluster CA; HAProxy checks each member over TLS and routes to the leader',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const inv = ctx.inventory;
    const ca = await ctx.secrets.clusterCa();
    if (ca === undefined) return fail(`the cluster's CA certificate ${caPathsFor(inv.file).cert} does not exist`, { remedy: 'Run `dpgc sprint 4` (it creates the CA), then `dpgc sprint 5`.' });
    const members = pgHosts(ctx);
    const now = Date.now();
    const perMember = await Promise.all(
      members.map(async (h) => {
        const base = `${h.address}:${inv.ports.patroni}`;
        const problems: string[] = [];
        const plain = await webRequest(`http://${base}/liveness`, { timeoutMs: 10_000 }).catch((e: Error) => e);
        if (!(plain instanceof Error)) problems.push(`${h.name}: Patroni's REST API answers plaintext HTTP (HTTP ${plain.status})`);
        const tls = await webRequest(`https://${base}/patroni`, { ca, timeoutMs: 10_000 }).catch((e: Error) => e);
        if (tls instanceof Error) problems.push(`${h.name}: Patroni's REST API does not serve TLS verified by the cluster CA: ${tls.message}`);
        else if (tls.status !== 200) problems.push(`${h.name}: GET /patroni over TLS answered HTTP ${tls.status}`);
        else if (tls.peerValidTo && (tls.peerValidTo.getTime() - now) / 86_400_000 < RENEW_BEFORE_DAYS) problems.push(`${h.name}: its REST certificate ends ${tls.peerValidTo.toISOString().slice(0, 10)}`);
        return problems;
      }),
    );
    const routing: string[] = [];
    const leader = await currentLeader(inv).catch((e: Error) => e);
    for (const n of await ctx.pool.nodesWith('haproxy')) {
      const checked = tlsCheckedIn((await n.host.readFile(n.paths.haproxyCfg)) ?? '');
      for (const h of members) if (!checked.includes(h.name)) routing.push(`HAProxy on ${n.spec.name} checks ${h.name} without TLS (no check-ssl)`);
      const stats = await showStat(n).catch((e: Error) => e);
      if (stats instanceof Error) {
        routing.push(`HAProxy on ${n.spec.name}: cannot read its state (${stats.message.split('\n')[0]})`);
        continue;
      }
      // L6: the TLS layer of a check failed (handshake, certificate); a check answered in HTTP (L7) went over TLS.
      for (const s of stats.filter((x) => x.checkStatus.startsWith('L6'))) routing.push(`HAProxy on ${n.spec.name}: the ${s.backend} check of ${s.server} fails in TLS (${s.checkStatus})`);
      const up = upServers(stats, BACKENDS.primary);
      if (leader instanceof Error) routing.push(`no leader to route to: ${leader.message.split('\n')[0]}`);
      else if (up.length !== 1 || up[0] !== leader.name) routing.push(`HAProxy on ${n.spec.name} routes its primary port to ${up.join(', ') || 'no server'}, not to the leader ${leader.name}`);
    }
    const problems = [...perMember.flat(), ...routing];
    const bad = perMember.filter((p) => p.length).length;
    const value = `${members.length - bad}/${members.length} members TLS only${leader instanceof Error ? '' : `; HAProxy checks over TLS, primary port on ${leader.name}`}`;
    const threshold = 'every member, every HAProxy';
    return problems.length ? fail(problems.join('\n'), { value, threshold, remedy: 'Run `dpgc sprint 5` again: it issues a missing or ending REST certificate, switches a member serving plaintext back to TLS (a reload) and HAProxy\'s check of it with it.' }) : pass(value, threshold);
  },
};

/** A client certificate from a CA the cluster does not trust, made for this measurement and thrown away. */
async function strangerCertificate(): Promise<{ cert: string; key: string }> {
  const control = CertificateAuthority.controlHost({ dryRun: false, logger: silentLogger });
  // Why sh: openssl writes key and certificate to files (node's stdio is a socket, which /dev/stdout cannot
  // reopen); a private temporary directory holds them for the moment it takes, removed whatever happens.
  const r = await control.exec(
    [
      'sh', '-c',
      'd=$(mktemp -d) || exit 1; trap \'rm -f -- "$d/k" "$d/c"; rmdir -- "$d"\' EXIT; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dpgc-stranger -days 1 -keyout "$d/k" -out "$d/c" 2>/dev/null && cat -- "$d/k" "$d/c"',
    ],
    { mutates: false },
  );
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----\n/.exec(r.stdout)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/.exec(r.stdout)?.[0];
  if (!key || !cert) throw new Error(`openssl made no certificate: ${r.stderr.trim()}`);
  return { cert, key };
}

/**
 * etcd serves TLS only and requires a certificate from the cluster's CA, on
 * every member's client and peer ports: a handshake answered in TLS on both,
 * dpgc's own client certificate gets /health, and a client without a
 * certificate, or with one from another CA, is refused on both ports. The
 * member list advertises https only (what Patroni follows).
 */
export const etcdTls: Check = {
  id: 's5.tls.etcd',
  title: 'etcd serves clients and peers over TLS only: plaintext, no certificate and a certificate from another CA are refused on every member; dpgc’s certificate is accepted',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const inv = ctx.inventory;
    const ca = await ctx.secrets.clusterCa();
    const files = controlClientFiles(caPathsFor(inv.file).dir);
    const [cert, key] = await Promise.all([files.cert, files.key].map((f) => readFile(f, 'utf8').catch(() => undefined)));
    if (!ca || !cert || !key) return fail(`dpgc's client certificate for etcd (${files.cert}) or the cluster's CA is missing`, { remedy: ETCD_REPAIR });
    const ours = { cert, key };
    const stranger = await strangerCertificate();
    const problems: string[] = [];
    const hosts = etcdHosts(inv);
    await Promise.all(
      hosts.map(async (h) => {
        for (const [what, port] of [['client', inv.ports.etcd_client], ['peer', inv.ports.etcd_peer]] as const) {
          const at = `${h.name} ${what} port ${h.address}:${port}`;
          const serves = await tlsProbe(h.address, port);
          if (serves !== 'tls') {
            problems.push(`${at}: ${serves === 'plain' ? 'answers in plaintext' : 'does not answer'}`);
            continue;
          }
          const url = `https://${h.address}:${port}/${what === 'client' ? 'health' : 'version'}`;
          const answer = (clientCert?: { cert: string; key: string }) =>
            webRequest(url, { ca, timeoutMs: 5000, ...(clientCert ? { clientCert } : {}) }).then(
              (r) => `HTTP ${r.status}`,
              () => undefined,
            );
          const [mine, none, foreign] = await Promise.all([answer(ours), answer(), answer(stranger)]);
          if (mine !== 'HTTP 200') problems.push(`${at}: dpgc's certificate gets ${mine ?? 'no answer'}`);
          if (none !== undefined) problems.push(`${at}: answers a client without a certificate (${none})`);
          if (foreign !== undefined) problems.push(`${at}: answers a certificate from another CA (${foreign})`);
        }
      }),
    );
    const members = await memberList(await etcdctlNode(ctx.pool), await liveClientEndpoints(inv)).catch(() => []);
    for (const m of members) {
      const plain = [...m.clientUrls, ...m.peerUrls].filter((u) => !u.startsWith('https:'));
      if (plain.length) problems.push(`${m.name || m.id}: the member list advertises ${plain.join(', ')}`);
    }
    if (problems.length) return fail(problems.sort().join('\n'), { value: `${problems.length} problem(s)`, threshold: 'TLS with a CA certificate required everywhere', remedy: ETCD_REPAIR });
    return pass(`${hosts.length} members × 2 ports: plaintext, no certificate and another CA's certificate refused`, 'TLS with a CA certificate required everywhere');
  },
};

const ETCD_REPAIR = 'Run `dpgc sprint 5` again: it issues any missing certificate and puts each etcd member back on TLS as rendered (one member at a time; the others keep the quorum).';
