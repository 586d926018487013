import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import { holding } from '../interrupt.js';
import { waitUntil } from '../wait.js';
import { currentLeader } from './cluster.js';
import { leftPausePatch, PAUSED_BY_DPGC, pauseOf, pauseRecord } from './patroni-cluster.js';
import { controlClientFiles, type CertificateAuthority, type CertRequest } from './ca.js';
import {
  configureEtcd,
  ETCD_CERT,
  etcdHosts,
  etcdServes,
  etcdService,
  etcdUser,
  liveClientEndpoints,
  memberList,
  memberMode,
  peerUrl,
  updatePeerUrl,
  waitForEtcdHealthy,
  type EtcdTlsMode,
} from './etcd.js';
import { setHealthChecks } from './haproxy.js';
import { ensurePatroniConfig, ETCD_CLIENT_CERT, patroniCredentials, patroniService, rest, REST_USER, restTarget } from './patroni.js';
import { restServes } from './patroni-tls.js';
import { PROMETHEUS_CLIENT_CERT } from './prometheus.js';

/**
 * etcd over TLS (sprint 5): clients and peers, a certificate from the cluster
 * CA required of both. Patroni, dpgc's etcdctl (the member's own certificate)
 * and dpgc's run lock (a client certificate beside the CA on the control
 * machine) and Prometheus each present one.
 *
 * A live cluster is switched without losing the DCS or a write:
 * 1. every member names its TLS files while its listeners stay plaintext, so
 *    that every member can dial a peer that serves TLS (etcd dials peers with
 *    its peer certificate whatever its own listener speaks);
 * 2. the first member moves: its peer URL in the member list, then a restart
 *    serving clients and peers over TLS only (the other two keep the quorum);
 * 3. Patroni reads its etcd settings only when it starts (a reload changes
 *    just the credentials: patroni/dcs/etcd.py): the cluster is paused
 *    (maintenance mode: PostgreSQL is neither stopped nor demoted) and each
 *    Patroni restarted with the TLS settings, HAProxy's checks of that member
 *    held meanwhile; it reaches the TLS member through its configured hosts
 *    and the plaintext ones through the member list;
 * 4. the other members move as the first did.
 * Every step reads the live cluster first, so an interrupted switch is
 * completed by the next run.
 */

/** A member's one certificate: serving clients and peers, dialing peers, and etcdctl on the host. */
export function etcdCertRequest(spec: Pick<HostSpec, 'name' | 'address'>): CertRequest {
  // etcd checks a peer's certificate against the address the connection comes from. To another loopback
  // address that is 127.0.0.1, whatever address the member listens on (the lab): named too, then.
  const loopback = spec.address.startsWith('127.') && spec.address !== '127.0.0.1' ? ['127.0.0.1'] : [];
  return { name: ETCD_CERT, cn: spec.name, dns: [spec.name], ips: [spec.address, ...loopback], usage: ['server', 'client'] };
}

const clientCert = (name: string, cn: string): CertRequest => ({ name, cn, dns: [], ips: [], usage: ['client'] });

type Inv = Parameters<typeof ensurePatroniConfig>[0] & Pick<Inventory, 'cluster'>;
interface SwitchCtx {
  inventory: Inv;
  pool: HostPool;
  secrets: Pick<Secrets, 'get' | 'clusterCa'>;
}

/**
 * Every certificate etcd's TLS needs, issued or renewed. etcd reads its files
 * at each handshake, Patroni and Prometheus at each new connection: a renewed
 * certificate needs no restart.
 */
export async function ensureEtcdCerts(ca: CertificateAuthority, ctx: Pick<SwitchCtx, 'inventory' | 'pool'>): Promise<{ changed: boolean; note?: string }> {
  const inv = ctx.inventory;
  const issued: string[] = [];
  const one = async (node: Node, req: CertRequest, owner: string) => {
    const r = await ca.ensureHostCert(node.host, node.paths.tlsDir, req, owner);
    if (r.changed) issued.push(`${node.spec.name} ${req.name}${r.reason ? ` (${r.reason})` : ''}`);
  };
  // One host's files at a time (a member's and Patroni's certificates share its directory), hosts at once.
  await Promise.all(
    inv.hosts.map(async (h) => {
      const n = await ctx.pool.node(h.name);
      if (h.roles.includes('etcd')) await one(n, etcdCertRequest(h), await etcdUser(n));
      if (h.roles.includes('postgres')) await one(n, clientCert(ETCD_CLIENT_CERT, `patroni-${h.name}`), 'postgres');
      if (h.roles.includes('monitoring')) await one(n, clientCert(PROMETHEUS_CLIENT_CERT, `prometheus-${h.name}`), 'prometheus');
    }),
  );
  const control = controlClientFiles(ca.paths.dir);
  const r = await ca.ensureHostCert(ca.control, control.dir, clientCert('dpgc', 'dpgc'), userInfo().username);
  if (r.changed) issued.push(`the control machine's client certificate${r.reason ? ` (${r.reason})` : ''}`);
  return issued.length ? { changed: true, note: `issued: ${issued.join(', ')}` } : { changed: false };
}

/** Restarts a member with `mode` rendered, when its file changes; then waits until etcd is healthy. */
async function moveMember(inv: Inv, pool: HostPool, node: Node, mode: EtcdTlsMode): Promise<boolean> {
  if (!(await configureEtcd(inv, node, mode))) return false;
  await node.services.restart(etcdService(inv, node, await etcdUser(node)));
  await waitUntil(
    async (seen) => {
      const s = await etcdServes(inv, node.spec);
      seen(`its client port answers ${s ?? 'nothing'}`);
      return (s === (mode === 'tls' ? 'tls' : 'plain')) || undefined;
    },
    { timeoutMs: 30_000, everyMs: 200 },
    `etcd on ${node.spec.name} serving ${mode === 'tls' ? 'TLS' : 'plaintext'}`,
  );
  await waitForEtcdHealthy(inv, await otherEtcdNode(inv, pool, node.spec.name), 60_000);
  return true;
}

/** Where etcdctl runs while `busy` restarts: another member's host (all hold their TLS files by then). */
async function otherEtcdNode(inv: Inv, pool: HostPool, busy: string): Promise<Node> {
  const h = etcdHosts(inv).find((x) => x.name !== busy) ?? etcdHosts(inv)[0]!;
  return pool.node(h.name);
}

async function switchMember(inv: Inv, pool: HostPool, node: Node): Promise<void> {
  const ctl = await otherEtcdNode(inv, pool, node.spec.name);
  const eps = await liveClientEndpoints(inv);
  const m = (await memberList(ctl, eps)).find((x) => x.name === node.spec.name);
  if (!m) throw new HostError(`etcd member ${node.spec.name} is not in the member list`, { hint: 'Run `dpgc sprint 2` to start it, then run sprint 5 again.' });
  const url = peerUrl(inv, node.spec, true);
  if (!m.peerUrls.includes(url)) await updatePeerUrl(ctl, eps, m.id, url);
  await moveMember(inv, pool, node, 'tls');
}

/** Beside Patroni's file: the pid of the Patroni that was started with etcd's TLS settings. */
const markerFile = (node: Pick<Node, 'paths'>) => `${dirname(node.paths.patroniConf)}/etcd-tls.pid`;

/**
 * Postgres members whose running Patroni was not started with etcd's TLS
 * settings: not the one the switch started (its pid beside the file), unless
 * every member serves TLS only and this Patroni reached etcd within two loops
 * (then it can only be speaking TLS: a Patroni the supervisor started again
 * after a crash, or a drill's kill).
 */
async function patroniOnPlainEtcd(inv: Inv, pool: HostPool): Promise<Node[]> {
  const allTls = (await liveClientEndpoints(inv)).every((u) => u.startsWith('https:'));
  const out: Node[] = [];
  for (const h of inv.hosts.filter((x) => x.roles.includes('postgres'))) {
    const n = await pool.node(h.name);
    const st = await n.services.status(patroniService(inv, n));
    const marker = (await n.host.readFile(markerFile(n)))?.trim();
    if (st.running && marker === String(st.pid)) continue;
    if (st.running && allTls) {
      const r = await rest<{ dcs_last_seen?: number }>(restTarget(inv, h), 'GET', '/patroni').catch(() => undefined);
      if ((r?.body?.dcs_last_seen ?? 0) >= Date.now() / 1000 - 2 * inv.timings.loop_wait) continue;
    }
    out.push(n);
  }
  return out;
}

/**
 * Pauses the cluster with dpgc's record (patroni-cluster.ts PAUSED_BY_DPGC), unless it is paused already:
 * an operator's pause is theirs, kept through the switch and left in place. Whether this run paused it.
 */
async function pauseForSwitch(inv: Inv, secrets: Pick<Secrets, 'get'>): Promise<boolean> {
  const leader = await currentLeader(inv).catch(() => undefined);
  const cur = leader ? await rest<Record<string, unknown>>(restTarget(inv, leader), 'GET', '/config').catch(() => undefined) : undefined;
  if (cur?.status === 200 && cur.body && pauseOf(cur.body).paused && !leftPausePatch(cur.body)) return false;
  await patchConfig(inv, secrets, { pause: true, [PAUSED_BY_DPGC]: pauseRecord("sprint 5's switch of etcd to TLS") }, 'pause');
  return true;
}

async function patchConfig(inv: Inv, secrets: Pick<Secrets, 'get'>, body: Record<string, unknown>, what: 'pause' | 'resume'): Promise<void> {
  const auth = { username: REST_USER, password: await secrets.get('patroni_rest') };
  let last = '';
  for (const h of inv.hosts.filter((x) => x.roles.includes('postgres'))) {
    try {
      const r = await rest(restTarget(inv, h), 'PATCH', '/config', { body, auth });
      if (r.status === 200) return;
      last = `${h.name}: HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
  }
  throw new HostError(`could not ${what} Patroni (${last})`, {
    hint: what === 'pause' ? 'Nothing was restarted. Check `dpgc status`, then run sprint 5 again.' : 'The cluster stays paused, and says dpgc paused it: the next `dpgc sprint 3` (or 4, or 5) resumes it. By hand: `patronictl -c <patroni.yml> resume`.',
  });
}

/** Patroni restarted, paused, with etcd's TLS settings: PostgreSQL keeps running and keeps its role. */
async function restartPatroniOntoTls(ctx: SwitchCtx, stale: Node[]): Promise<string[]> {
  const inv = ctx.inventory;
  const creds = await patroniCredentials(ctx.secrets);
  const proxies = await Promise.all(inv.hosts.filter((x) => x.roles.includes('haproxy')).map((x) => ctx.pool.node(x.name)));
  const done: string[] = [];
  const paused = await pauseForSwitch(inv, ctx.secrets);
  // Resumed however the run ends, a second Ctrl-C included (interrupt.ts); a SIGKILL leaves the record, and the next run resumes.
  const resume = async () => {
    if (paused) await patchConfig(inv, ctx.secrets, { pause: null, [PAUSED_BY_DPGC]: null }, 'resume');
  };
  await holding('Patroni paused for the switch of etcd to TLS', resume, async () => {
    for (const n of stale) {
      const t0 = Date.now();
      await ensurePatroniConfig(inv, n, creds, { requireTls: true, restTls: (await restServes(inv, n.spec)) !== 'plain', etcdTls: true });
      // Its REST API is down for the restart: HAProxy keeps the member's state meanwhile.
      for (const p of proxies) await setHealthChecks(p, n.spec.name, false);
      try {
        await n.services.restart(patroniService(inv, n));
        const started = Date.now() / 1000;
        await waitUntil(
          async (seen) => {
            const r = await rest<{ dcs_last_seen?: number; state?: string }>(restTarget(inv, n.spec), 'GET', '/patroni').catch(() => undefined);
            seen(r ? `state ${r.body?.state ?? '?'}, etcd last reached ${r.body?.dcs_last_seen ?? 'never'}` : 'no answer');
            return ((r?.body?.dcs_last_seen ?? 0) >= started && r?.body?.state === 'running') || undefined;
          },
          { timeoutMs: 60_000, everyMs: 250 },
          `Patroni on ${n.spec.name} back, reaching etcd over TLS`,
        );
      } finally {
        for (const p of proxies) await setHealthChecks(p, n.spec.name, true).catch(() => undefined);
      }
      const st = await n.services.status(patroniService(inv, n));
      if (st.running) await n.host.writeFile(markerFile(n), `${st.pid}\n`, { mode: 0o644, owner: 'root' });
      done.push(`${n.spec.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  });
  return done;
}

/** The whole switch; each part skipped when the live cluster already has it. */
export async function switchEtcdToTls(ctx: SwitchCtx): Promise<{ changed: boolean; note?: string }> {
  const inv = ctx.inventory;
  const nodes = await Promise.all(etcdHosts(inv).map((h) => ctx.pool.node(h.name)));
  const steps: string[] = [];
  const t0 = Date.now();
  // 1. Every member able to dial a TLS peer, before any peer serves TLS.
  for (const n of nodes) {
    if ((await memberMode(inv, n)) === 'plain' && (await moveMember(inv, ctx.pool, n, 'files'))) steps.push(`${n.spec.name} TLS files`);
  }
  // 2. The first member onto TLS, unless one is already.
  const modes = await Promise.all(nodes.map((n) => memberMode(inv, n)));
  if (!modes.includes('tls')) {
    await switchMember(inv, ctx.pool, nodes[0]!);
    steps.push(`${nodes[0]!.spec.name} on TLS`);
  }
  // 3. Patroni follows while the other members still serve plaintext.
  const stale = await patroniOnPlainEtcd(inv, ctx.pool);
  if (stale.length) steps.push(`Patroni restarted paused: ${(await restartPatroniOntoTls(ctx, stale)).join(', ')}`);
  // 4. The others; a member already on TLS whose file was edited by hand is rendered again and restarted.
  for (const n of nodes) {
    if ((await memberMode(inv, n)) !== 'tls') {
      await switchMember(inv, ctx.pool, n);
      steps.push(`${n.spec.name} on TLS`);
    } else if (await moveMember(inv, ctx.pool, n, 'tls')) {
      steps.push(`${n.spec.name}: its file rendered again, restarted`);
    }
  }
  return steps.length ? { changed: true, note: `${steps.join('; ')} (${((Date.now() - t0) / 1000).toFixed(1)} s)` } : { changed: false };
}

/** What the switch would do, read from the live cluster (dpgc plan 5). */
export async function observeEtcdTls(ctx: Pick<SwitchCtx, 'inventory' | 'pool'>): Promise<{ changed: boolean; would?: string[] }> {
  const inv = ctx.inventory;
  const would: string[] = [];
  for (const h of etcdHosts(inv)) {
    if ((await etcdServes(inv, h)) !== 'tls') would.push(`etcd on ${h.name}: clients and peers onto TLS (peer URL updated, one restart)`);
  }
  const stale = await patroniOnPlainEtcd(inv, ctx.pool).catch(() => []);
  if (stale.length) would.push(`Patroni on ${stale.map((n) => n.spec.name).join(', ')}: restarted paused (PostgreSQL keeps running) with etcd's TLS settings`);
  return would.length ? { changed: true, would } : { changed: false };
}
