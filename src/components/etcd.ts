import type { HostSpec, Inventory } from '../config/schema.js';
import type { HostPaths } from '../config/paths.js';
import { ETCD_ELECTION_TIMEOUT_S } from '../config/timings.js';
import { HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { render } from '../templates.js';
import { waitUntil } from '../wait.js';
import { tlsProbe } from './web-client.js';
import { ensurePackages, HA_PACKAGES } from './ha-packages.js';

/**
 * etcd, the DCS Patroni keeps its leader lock in: one member per `etcd` host.
 * Rendering is pure; every read of the live cluster goes through `etcdctl`
 * (ETCDCTL_API=3, JSON output) run on an etcd host, so it works over SSH
 * exactly as locally and needs no gRPC route from the control machine.
 */
type Inv = Pick<Inventory, 'hosts' | 'ports' | 'cluster'>;

const scheme = (tls: boolean) => (tls ? 'https' : 'http');
export const clientUrl = (inv: Pick<Inventory, 'ports'>, h: Pick<HostSpec, 'address'>, tls = false) => `${scheme(tls)}://${h.address}:${inv.ports.etcd_client}`;
export const peerUrl = (inv: Pick<Inventory, 'ports'>, h: Pick<HostSpec, 'address'>, tls = false) => `${scheme(tls)}://${h.address}:${inv.ports.etcd_peer}`;
/** host:port of a client URL, whatever its scheme: how a member is recognised in etcd's own answers. */
export const endpointAddress = (url: string) => url.replace(/^https?:\/\//, '');

/**
 * etcd's TLS files on a member (sprint 5, components/etcd-tls.ts): one key and
 * certificate for serving clients and peers and for dialing peers (etcd uses
 * the peer pair both ways) and for dpgc's etcdctl on the host; the CA beside them.
 */
export const ETCD_CERT = 'etcd';
export function etcdTlsFiles(paths: Pick<HostPaths, 'tlsDir'>) {
  return { cert: `${paths.tlsDir}/${ETCD_CERT}.crt`, key: `${paths.tlsDir}/${ETCD_CERT}.key`, ca: `${paths.tlsDir}/ca.crt` };
}

/**
 * How a member is configured: `plain` (sprints 2-4), `files` (its TLS files
 * named, its listeners still plaintext: every member must be able to dial a
 * TLS peer before any peer serves TLS), `tls` (clients and peers over TLS, a
 * certificate from the CA required of both).
 */
export type EtcdTlsMode = 'plain' | 'files' | 'tls';

export function etcdHosts(inv: Pick<Inventory, 'hosts'>): HostSpec[] {
  return inv.hosts.filter((h) => h.roles.includes('etcd'));
}

/** All client URLs in one scheme: the form Patroni's configuration takes. */
export function clientEndpoints(inv: Pick<Inventory, 'hosts' | 'ports'>, tls = false): string[] {
  return etcdHosts(inv).map((h) => clientUrl(inv, h, tls));
}

/** What a member's client port speaks now: 'tls', 'plain', or undefined when nothing answers. */
export function etcdServes(inv: Pick<Inventory, 'ports'>, h: Pick<HostSpec, 'address'>): Promise<'tls' | 'plain' | undefined> {
  return tlsProbe(h.address, inv.ports.etcd_client);
}

/**
 * Every member's client URL in the scheme it serves now, read from the live
 * cluster (a TLS handshake per member, never the state file), so every sprint
 * and check reaches etcd as it is, during sprint 5's switch too. A member that
 * does not answer is given the scheme of the others that do.
 */
export async function liveClientEndpoints(inv: Pick<Inventory, 'hosts' | 'ports'>): Promise<string[]> {
  const hosts = etcdHosts(inv);
  const serves = await Promise.all(hosts.map((h) => etcdServes(inv, h)));
  const anyTls = serves.includes('tls');
  return hosts.map((h, i) => clientUrl(inv, h, serves[i] === 'tls' || (serves[i] === undefined && anyTls)));
}

/** Whether the cluster's etcd serves TLS: any member does (sprint 5 switches the first before Patroni follows). */
export async function etcdTlsOn(inv: Pick<Inventory, 'hosts' | 'ports'>): Promise<boolean> {
  return (await liveClientEndpoints(inv)).some((u) => u.startsWith('https:'));
}

export function renderEtcdEnv(inv: Inv, host: Pick<HostSpec, 'name' | 'address'>, paths: Pick<HostPaths, 'etcdData' | 'tlsDir'>, mode: EtcdTlsMode = 'plain'): string {
  const tls = mode === 'tls';
  return render('etcd/etcd.env.eta', {
    name: host.name,
    cluster: inv.cluster,
    dataDir: paths.etcdData,
    clientUrl: clientUrl(inv, host, tls),
    peerUrl: peerUrl(inv, host, tls),
    tlsFiles: mode === 'plain' ? undefined : etcdTlsFiles(paths),
    initialCluster: etcdHosts(inv)
      .map((h) => `${h.name}=${peerUrl(inv, h, tls)}`)
      .join(','),
    token: `dpgc-${inv.cluster}`,
    heartbeatMs: 100,
    electionMs: ETCD_ELECTION_TIMEOUT_S * 1000,
  });
}

export async function etcdUser(node: Pick<Node, 'host'>): Promise<string> {
  const r = await node.host.exec(['id', '-u', 'etcd'], { mutates: false, allowFailure: true });
  return r.exitCode === 0 ? 'etcd' : 'root';
}

export function etcdService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>, user: string): ServiceSpec {
  return {
    name: 'etcd',
    user,
    argv: ['etcd'],
    envFile: node.paths.etcdConf,
    listen: { address: node.spec.address, port: inv.ports.etcd_client },
    startTimeoutMs: 30_000,
    stopTimeoutMs: 60_000,
  };
}

export async function installEtcd(node: Node): Promise<boolean> {
  return ensurePackages(node, HA_PACKAGES.etcd);
}

/**
 * Data dir owned by the etcd user, mode 0700 (etcd refuses laxer modes with a
 * warning and fixes them itself). Never emptied: a member with data keeps it.
 */
export async function configureEtcd(inv: Inv, node: Node, mode?: EtcdTlsMode): Promise<boolean> {
  const user = await etcdUser(node);
  const dir = node.paths.etcdData;
  const st = await node.host.exec(['stat', '-c', '%U %a', dir], { mutates: false, allowFailure: true });
  let changed = false;
  if (st.stdout.trim() !== `${user} 700`) {
    // Why sh: three steps in one round trip; directory and owner are "$1" and "$2", never spliced in.
    await node.host.exec(['sh', '-c', 'mkdir -p -- "$1" && chown -- "$2" "$1" && chmod 700 -- "$1"', 'sh', dir, `${user}:`]);
    changed = true;
  }
  const w = await node.host.writeFile(node.paths.etcdConf, renderEtcdEnv(inv, node.spec, node.paths, mode ?? (await memberMode(inv, node))), { mode: 0o644 });
  return changed || w.changed;
}

/**
 * The mode a member's file keeps when a sprint re-renders it: what it serves
 * now, so no re-run of sprint 2 takes etcd back to plaintext; a member that
 * does not answer follows its file (sprint 5 may have named its TLS files).
 */
export async function memberMode(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'host' | 'spec' | 'paths'>): Promise<EtcdTlsMode> {
  const serves = await etcdServes(inv, node.spec);
  if (serves === 'tls') return 'tls';
  const file = (await node.host.readFile(node.paths.etcdConf)) ?? '';
  if (serves === undefined && /^ETCD_LISTEN_CLIENT_URLS='https:/m.test(file)) return 'tls';
  return /^ETCD_PEER_CERT_FILE=/m.test(file) ? 'files' : 'plain';
}

/** Start, or restart when the rendered environment changed under a running member. */
export async function startEtcd(inv: Inv, node: Node, configChanged: boolean): Promise<boolean> {
  const spec = etcdService(inv, node, await etcdUser(node));
  const st = await node.services.status(spec);
  if (st.running && configChanged) {
    await node.services.restart(spec);
    return true;
  }
  return (await node.services.start(spec)).changed;
}

// ---------------------------------------------------------------- live reads

export interface EndpointHealth {
  endpoint: string;
  health: boolean;
  tookMs?: number;
  error?: string;
}
export interface EtcdMember {
  id: string;
  name: string;
  clientUrls: string[];
  peerUrls: string[];
}

type EtcdctlNode = Pick<Node, 'host' | 'paths'>;

/**
 * etcdctl on an etcd host. Over TLS it presents the member's own certificate
 * (client and server usage); etcdctl takes one scheme for all endpoints, so
 * while sprint 5 switches members one at a time the TLS ones are asked.
 */
async function etcdctl(node: EtcdctlNode, endpoints: string[], args: string[], opts: { input?: string; allowFailure?: boolean; mutates?: boolean } = {}) {
  const tls = endpoints.filter((e) => e.startsWith('https:'));
  const f = etcdTlsFiles(node.paths);
  const tlsArgs = tls.length ? [`--cacert=${f.ca}`, `--cert=${f.cert}`, `--key=${f.key}`] : [];
  return node.host.exec(['etcdctl', '-w', 'json', '--dial-timeout=2s', '--command-timeout=3s', ...tlsArgs, `--endpoints=${(tls.length ? tls : endpoints).join(',')}`, ...args], {
    env: { ETCDCTL_API: '3', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    mutates: opts.mutates ?? false,
    allowFailure: opts.allowFailure ?? false,
    timeoutMs: 20_000,
    ...(opts.input === undefined ? {} : { input: opts.input }),
  });
}

/** Where etcdctl runs: the first etcd host that is reachable at all. */
export async function etcdctlNode(pool: HostPool): Promise<Node> {
  const specs = pool.specs('etcd');
  for (const s of specs) {
    try {
      return await pool.node(s.name);
    } catch {
      // try the next member's host
    }
  }
  throw new HostError(`no etcd host is reachable (${specs.map((s) => s.name).join(', ')})`);
}

export async function endpointHealth(node: EtcdctlNode, endpoints: string[]): Promise<EndpointHealth[]> {
  // One etcdctl per scheme (it takes one for all its endpoints): mid-switch, both are asked.
  const groups = [endpoints.filter((e) => e.startsWith('https:')), endpoints.filter((e) => !e.startsWith('https:'))].filter((g) => g.length);
  const rows: { endpoint: string; health: boolean; took?: string; error?: string }[] = [];
  for (const g of groups) {
    // Non-zero exit when any endpoint is unhealthy; the JSON still lists them all.
    const r = await etcdctl(node, g, ['endpoint', 'health'], { allowFailure: true });
    try {
      rows.push(...(parseEtcdJson(r.stdout || '[]') as typeof rows));
    } catch {
      throw new HostError(`etcdctl endpoint health gave no JSON: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
    }
  }
  return endpoints.map((ep) => {
    const row = rows.find((x) => x.endpoint === ep);
    if (!row) return { endpoint: ep, health: false, error: 'no answer' };
    const took = row.took ? parseDuration(row.took) : undefined;
    return { endpoint: ep, health: row.health, ...(took === undefined ? {} : { tookMs: took }), ...(row.error ? { error: row.error } : {}) };
  });
}

/** Until every member answers healthy (a member waits for a quorum of its peers before it serves). */
export async function waitForEtcdHealthy(inv: Pick<Inventory, 'hosts' | 'ports'>, node: EtcdctlNode, timeoutMs = 30_000): Promise<void> {
  let last: EndpointHealth[] = [];
  await waitUntil(
    async () => (last = await endpointHealth(node, await liveClientEndpoints(inv))).every((x) => x.health),
    {
      timeoutMs,
      everyMs: 500,
      timeoutError: () =>
        new HostError(`etcd is not healthy after ${timeoutMs / 1000} s: ${last.filter((x) => !x.health).map((x) => `${x.endpoint} (${x.error ?? 'unhealthy'})`).join(', ')}`, {
          hint: 'Read etcd.log on the hosts named; a member needs a quorum of its peers reachable on the peer port.',
        }),
    },
    'every etcd member healthy',
  );
}

/** Which member leads, seen from each endpoint that answers. */
export async function endpointStatus(node: EtcdctlNode, endpoints: string[]): Promise<{ endpoint: string; memberId: string; leaderId: string; raftTerm: number }[]> {
  const r = await etcdctl(node, endpoints, ['endpoint', 'status'], { allowFailure: true });
  let rows: { Endpoint: string; Status: { header: { member_id: number | string; raft_term: number }; leader: number | string } }[] = [];
  try {
    rows = parseEtcdJson(r.stdout || '[]') as typeof rows;
  } catch {
    return [];
  }
  return rows.map((x) => ({ endpoint: x.Endpoint, memberId: hex(x.Status.header.member_id), leaderId: hex(x.Status.leader), raftTerm: x.Status.header.raft_term }));
}

export async function memberList(node: EtcdctlNode, endpoints: string[]): Promise<EtcdMember[]> {
  const r = await etcdctl(node, endpoints, ['member', 'list']);
  const j = parseEtcdJson(r.stdout) as { members?: { ID: number | string; name?: string; clientURLs?: string[]; peerURLs?: string[] }[] };
  return (j.members ?? []).map((m) => ({ id: hex(m.ID), name: m.name ?? '', clientUrls: m.clientURLs ?? [], peerUrls: m.peerURLs ?? [] }));
}

export async function putKey(node: EtcdctlNode, endpoint: string, key: string, value: string): Promise<void> {
  // The value goes on stdin: `etcdctl put <key>` reads it there when no value argument is given.
  await etcdctl(node, [endpoint], ['put', key], { input: value, mutates: true });
}

export async function getKey(node: EtcdctlNode, endpoint: string, key: string, opts: { consistency?: 's' | 'l' } = {}): Promise<string | undefined> {
  const r = await etcdctl(node, [endpoint], ['get', key, `--consistency=${opts.consistency ?? 'l'}`]);
  const j = parseEtcdJson(r.stdout) as { kvs?: { value: string }[] };
  const v = j.kvs?.[0]?.value;
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}

/** A member's peer URL changed in the member list (the switch to TLS): its peers dial it there from now on. */
export async function updatePeerUrl(node: EtcdctlNode, endpoints: string[], memberId: string, url: string): Promise<void> {
  await etcdctl(node, endpoints, ['member', 'update', memberId, `--peer-urls=${url}`], { mutates: true });
}

export async function deleteKey(node: EtcdctlNode, endpoint: string, key: string): Promise<void> {
  await etcdctl(node, [endpoint], ['del', key], { mutates: true });
}

/** Keys under a prefix (values not needed): Patroni's members under /service/<scope>/members/. */
export async function keysWithPrefix(node: EtcdctlNode, endpoints: string[], prefix: string): Promise<string[]> {
  const r = await etcdctl(node, endpoints, ['get', prefix, '--prefix', '--keys-only']);
  const j = parseEtcdJson(r.stdout) as { kvs?: { key: string }[] };
  return (j.kvs ?? []).map((k) => Buffer.from(k.key, 'base64').toString('utf8'));
}

/**
 * etcd prints 64-bit ids as bare JSON numbers, which lose precision as
 * doubles: quote them before parsing, then show them in hex like etcdctl's tables.
 */
export function parseEtcdJson(text: string): unknown {
  return JSON.parse(text.replace(/"(ID|member_id|cluster_id|leader)":(\d+)/g, '"$1":"$2"'));
}

function hex(id: number | string): string {
  return BigInt(id).toString(16);
}

function parseDuration(s: string): number | undefined {
  const m = /^([\d.]+)(ns|µs|us|ms|s)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : m[2] === 'ms' ? n : m[2] === 'ns' ? n / 1e6 : n / 1000;
}
