import type { HostSpec, Inventory } from '../config/schema.js';
import type { HostPaths } from '../config/paths.js';
import { ETCD_ELECTION_TIMEOUT_S } from '../config/timings.js';
import { HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { render } from '../templates.js';
import { waitUntil } from '../wait.js';
import { ensurePackages, HA_PACKAGES } from './ha-packages.js';

/**
 * etcd, the DCS Patroni keeps its leader lock in: one member per `etcd` host.
 * Rendering is pure; every read of the live cluster goes through `etcdctl`
 * (ETCDCTL_API=3, JSON output) run on an etcd host, so it works over SSH
 * exactly as locally and needs no gRPC route from the control machine.
 */
type Inv = Pick<Inventory, 'hosts' | 'ports' | 'cluster'>;

export const clientUrl = (inv: Pick<Inventory, 'ports'>, h: Pick<HostSpec, 'address'>) => `http://${h.address}:${inv.ports.etcd_client}`;
export const peerUrl = (inv: Pick<Inventory, 'ports'>, h: Pick<HostSpec, 'address'>) => `http://${h.address}:${inv.ports.etcd_peer}`;

export function etcdHosts(inv: Pick<Inventory, 'hosts'>): HostSpec[] {
  return inv.hosts.filter((h) => h.roles.includes('etcd'));
}

/** All client URLs, comma-separated: the form etcdctl and Patroni take. */
export function clientEndpoints(inv: Pick<Inventory, 'hosts' | 'ports'>): string[] {
  return etcdHosts(inv).map((h) => clientUrl(inv, h));
}

export function renderEtcdEnv(inv: Inv, host: Pick<HostSpec, 'name' | 'address'>, paths: Pick<HostPaths, 'etcdData'>): string {
  return render('etcd/etcd.env.eta', {
    name: host.name,
    cluster: inv.cluster,
    dataDir: paths.etcdData,
    clientUrl: clientUrl(inv, host),
    peerUrl: peerUrl(inv, host),
    initialCluster: etcdHosts(inv)
      .map((h) => `${h.name}=${peerUrl(inv, h)}`)
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
export async function configureEtcd(inv: Inv, node: Node): Promise<boolean> {
  const user = await etcdUser(node);
  const dir = node.paths.etcdData;
  const st = await node.host.exec(['stat', '-c', '%U %a', dir], { mutates: false, allowFailure: true });
  let changed = false;
  if (st.stdout.trim() !== `${user} 700`) {
    // Why sh: three steps in one round trip; directory and owner are "$1" and "$2", never spliced in.
    await node.host.exec(['sh', '-c', 'mkdir -p -- "$1" && chown -- "$2" "$1" && chmod 700 -- "$1"', 'sh', dir, `${user}:`]);
    changed = true;
  }
  const w = await node.host.writeFile(node.paths.etcdConf, renderEtcdEnv(inv, node.spec, node.paths), { mode: 0o644 });
  return changed || w.changed;
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

async function etcdctl(node: Pick<Node, 'host'>, endpoints: string[], args: string[], opts: { input?: string; allowFailure?: boolean; mutates?: boolean } = {}) {
  return node.host.exec(['etcdctl', '-w', 'json', '--dial-timeout=2s', '--command-timeout=3s', `--endpoints=${endpoints.join(',')}`, ...args], {
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

export async function endpointHealth(node: Pick<Node, 'host'>, endpoints: string[]): Promise<EndpointHealth[]> {
  // Non-zero exit when any endpoint is unhealthy; the JSON still lists them all.
  const r = await etcdctl(node, endpoints, ['endpoint', 'health'], { allowFailure: true });
  let rows: { endpoint: string; health: boolean; took?: string; error?: string }[] = [];
  try {
    rows = parseEtcdJson(r.stdout || '[]') as typeof rows;
  } catch {
    throw new HostError(`etcdctl endpoint health gave no JSON: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
  }
  return endpoints.map((ep) => {
    const row = rows.find((x) => x.endpoint === ep);
    if (!row) return { endpoint: ep, health: false, error: 'no answer' };
    const took = row.took ? parseDuration(row.took) : undefined;
    return { endpoint: ep, health: row.health, ...(took === undefined ? {} : { tookMs: took }), ...(row.error ? { error: row.error } : {}) };
  });
}

/** Until every member answers healthy (a member waits for a quorum of its peers before it serves). */
export async function waitForEtcdHealthy(inv: Pick<Inventory, 'hosts' | 'ports'>, node: Pick<Node, 'host'>, timeoutMs = 30_000): Promise<void> {
  let last: EndpointHealth[] = [];
  await waitUntil(
    async () => (last = await endpointHealth(node, clientEndpoints(inv))).every((x) => x.health),
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
export async function endpointStatus(node: Pick<Node, 'host'>, endpoints: string[]): Promise<{ endpoint: string; memberId: string; leaderId: string; raftTerm: number }[]> {
  const r = await etcdctl(node, endpoints, ['endpoint', 'status'], { allowFailure: true });
  let rows: { Endpoint: string; Status: { header: { member_id: number | string; raft_term: number }; leader: number | string } }[] = [];
  try {
    rows = parseEtcdJson(r.stdout || '[]') as typeof rows;
  } catch {
    return [];
  }
  return rows.map((x) => ({ endpoint: x.Endpoint, memberId: hex(x.Status.header.member_id), leaderId: hex(x.Status.leader), raftTerm: x.Status.header.raft_term }));
}

export async function memberList(node: Pick<Node, 'host'>, endpoints: string[]): Promise<EtcdMember[]> {
  const r = await etcdctl(node, endpoints, ['member', 'list']);
  const j = parseEtcdJson(r.stdout) as { members?: { ID: number | string; name?: string; clientURLs?: string[]; peerURLs?: string[] }[] };
  return (j.members ?? []).map((m) => ({ id: hex(m.ID), name: m.name ?? '', clientUrls: m.clientURLs ?? [], peerUrls: m.peerURLs ?? [] }));
}

export async function putKey(node: Pick<Node, 'host'>, endpoint: string, key: string, value: string): Promise<void> {
  // The value goes on stdin: `etcdctl put <key>` reads it there when no value argument is given.
  await etcdctl(node, [endpoint], ['put', key], { input: value, mutates: true });
}

export async function getKey(node: Pick<Node, 'host'>, endpoint: string, key: string, opts: { consistency?: 's' | 'l' } = {}): Promise<string | undefined> {
  const r = await etcdctl(node, [endpoint], ['get', key, `--consistency=${opts.consistency ?? 'l'}`]);
  const j = parseEtcdJson(r.stdout) as { kvs?: { value: string }[] };
  const v = j.kvs?.[0]?.value;
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}

export async function deleteKey(node: Pick<Node, 'host'>, endpoint: string, key: string): Promise<void> {
  await etcdctl(node, [endpoint], ['del', key], { mutates: true });
}

/** Keys under a prefix (values not needed): Patroni's members under /service/<scope>/members/. */
export async function keysWithPrefix(node: Pick<Node, 'host'>, endpoints: string[], prefix: string): Promise<string[]> {
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
