import { X509Certificate } from 'node:crypto';
import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import type { Node } from '../hosts/pool.js';
import { waitUntil } from '../wait.js';
import type { CertificateAuthority, CertRequest } from './ca.js';
import { currentLeader } from './cluster.js';
import type { HostPool } from '../hosts/pool.js';
import { configureHaproxy, ensureHaproxyRouting, setHealthChecks } from './haproxy.js';
import { ensurePatroniConfig, patroniCredentials, patroniService, REST_CERT, type PatroniTls } from './patroni.js';
import { servedFingerprint, tlsProbe } from './web-client.js';
import { etcdTlsOn } from './etcd.js';

/**
 * Patroni's REST API over TLS (sprint 5): each member serves https only,
 * with a certificate from the cluster CA (its name and address as SANs, the
 * key made on the member, owned by postgres); members, patronictl (ctl.cacert),
 * dpgc (components/patroni.ts rest) and HAProxy's checks verify it against
 * the CA. Patroni re-creates its REST server on a reload when certfile
 * appears or the certificate's serial changes (patroni/api.py reload_config,
 * reload_local_certificate): no restart.
 *
 * Switched one member at a time, with HAProxy's checks of that member paused
 * in the running HAProxy meanwhile: once the member serves TLS, HAProxy's new
 * configuration checks it over TLS and a reload puts it in force. A check
 * in the wrong protocol never runs, so the leader is never marked DOWN.
 */
export function restCertRequest(spec: Pick<HostSpec, 'name' | 'address'>): CertRequest {
  return { name: REST_CERT, cn: spec.name, dns: [spec.name], ips: [spec.address], usage: ['server'] };
}

/** The member's REST certificate; a renewed one on a member already serving TLS is read on a reload. */
export async function ensureRestCert(ca: CertificateAuthority, inv: Pick<Inventory, 'ports'>, node: Node): Promise<{ changed: boolean; note?: string }> {
  const r = await ca.ensureHostCert(node.host, node.paths.tlsDir, restCertRequest(node.spec), 'postgres');
  if (!r.changed) return { changed: false };
  const note = r.reason ? `issued: ${r.reason}` : 'CA copy written';
  if (node.host.dryRun || (await restServes(inv, node.spec)) !== 'tls') return { changed: true, note };
  // Patroni takes the certificate when a reload finds its serial changed, in its next loop. A reload is not
  // proof: until the member hands out the new certificate, the reload is sent again.
  const pem = await node.host.readFile(`${node.paths.tlsDir}/${REST_CERT}.crt`);
  const want = pem ? new X509Certificate(pem).fingerprint256 : undefined;
  const reload = () => node.services.reload(patroniService(inv, node));
  await reload();
  let sent = Date.now();
  await waitUntil(
    async (seen) => {
      const got = await servedFingerprint(node.spec.address, inv.ports.patroni);
      seen(`serving ${got ?? 'nothing over TLS'}`);
      if (want === undefined || got === want) return true;
      if (Date.now() - sent > 5000) {
        await reload();
        sent = Date.now();
      }
      return undefined;
    },
    { timeoutMs: 30_000, everyMs: 500 },
    `Patroni on ${node.spec.name} serving its new REST certificate`,
  );
  return { changed: true, note: `${note}; Patroni reloaded` };
}

/** What the member's REST port speaks now: 'tls', 'plain', or undefined when nothing answers. */
export function restServes(inv: Pick<Inventory, 'ports'>, spec: Pick<HostSpec, 'address'>): Promise<'tls' | 'plain' | undefined> {
  return tlsProbe(spec.address, inv.ports.patroni);
}

/**
 * PatroniTls for one member's file, for every sprint that renders it: TLS for
 * PostgreSQL as the cluster has it (deployed.ts tlsRequired); the REST API as
 * the member serves it now, so no re-run takes it back to plaintext and none
 * but sprint 5's switch turns it on. A member that does not answer follows
 * the cluster: on a TLS cluster, its REST API is TLS.
 */
export async function memberTls(inv: Pick<Inventory, 'ports' | 'hosts'>, spec: Pick<HostSpec, 'address'>, cluster: { requireTls: boolean }): Promise<PatroniTls> {
  if (!cluster.requireTls) return { requireTls: false };
  const [serves, etcdTls] = await Promise.all([restServes(inv, spec), etcdTlsOn(inv)]);
  return { requireTls: true, restTls: serves !== 'plain', etcdTls };
}

type SwitchInv = Parameters<typeof ensurePatroniConfig>[0] & Parameters<typeof ensureHaproxyRouting>[0];

/**
 * Every member's REST API onto TLS, replicas first and the leader last, one
 * at a time: its file (certfile, keyfile) and a reload; once it answers a TLS
 * handshake, every HAProxy checks it over TLS (validated, reloaded, and routing
 * the primary port to the leader before the next member).
 */
export async function switchRestToTls(
  ctx: { inventory: SwitchInv; pool: HostPool; secrets: Pick<Secrets, 'get' | 'clusterCa'> },
): Promise<{ changed: boolean; note?: string }> {
  const inv = ctx.inventory;
  const members = inv.hosts.filter((h) => h.roles.includes('postgres'));
  const leader = await currentLeader(inv).catch(() => undefined);
  const order = [...members.filter((h) => h.name !== leader?.name), ...members.filter((h) => h.name === leader?.name)];
  const creds = await patroniCredentials(ctx.secrets);
  const switched: string[] = [];
  for (const h of order) {
    if ((await restServes(inv, h)) === 'tls') continue;
    const t0 = Date.now();
    // Until HAProxy checks it over TLS, its plaintext check of this member would fail: paused meanwhile, so
    // the member stays UP (the leader on the primary port) while HAProxy's new workers check it over TLS.
    const proxies = await Promise.all(inv.hosts.filter((x) => x.roles.includes('haproxy')).map((x) => ctx.pool.node(x.name)));
    for (const p of proxies) await setHealthChecks(p, h.name, false);
    try {
      await ensurePatroniConfig(inv, await ctx.pool.node(h.name), creds, { requireTls: true, restTls: true });
      await waitUntil(
        async (seen) => {
          const s = await restServes(inv, h);
          seen(`its REST port answers ${s ?? 'nothing'}`);
          return s === 'tls' || undefined;
        },
        { timeoutMs: (3 * inv.timings.loop_wait + 15) * 1000, everyMs: 100 },
        `Patroni on ${h.name} serving its REST API over TLS`,
      );
      await followWithHaproxy(ctx);
    } catch (e) {
      // Not switched: the running workers check it as before.
      for (const p of proxies) await setHealthChecks(p, h.name, true).catch(() => undefined);
      throw e;
    }
    switched.push(`${h.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return switched.length ? { changed: true, note: `REST API on TLS, HAProxy checking it over TLS: ${switched.join(', ')}` } : { changed: false };
}

/** Every HAProxy's checks as the members serve now, reloaded when that changed. */
export async function followWithHaproxy(ctx: { inventory: SwitchInv; pool: HostPool; secrets: Pick<Secrets, 'get' | 'clusterCa'> }): Promise<void> {
  for (const hp of ctx.inventory.hosts.filter((x) => x.roles.includes('haproxy'))) {
    const n = await ctx.pool.node(hp.name);
    await ensureHaproxyRouting(ctx.inventory, n, await configureHaproxy(ctx.inventory, n, ctx.secrets));
  }
}
