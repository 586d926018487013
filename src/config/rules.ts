import type { ParsedInventory, Role } from './schema.js';
import { alertingRules } from './alerting.js';
import type { Path } from './source.js';
import { resolveTimings, validateTimings } from './timings.js';

/**
 * Rules no single field can express: uniqueness, etcd quorum, port clashes,
 * Patroni timing arithmetic. Each problem names the path to point at; where
 * a value may come from a default, `paths` lists candidates in order of
 * preference and the loader points at the first one the file sets.
 */
export interface RuleProblem {
  paths: Path[];
  at?: 'key' | 'value';
  message: string;
}

export type PortName = keyof ParsedInventory['ports'];

/** Which ports each role's services listen on; node_exporter runs on every host. */
const ROLE_PORTS: Record<Role, PortName[]> = {
  postgres: ['postgres', 'patroni', 'postgres_exporter', 'pgbackrest', 'mtail'],
  etcd: ['etcd_client', 'etcd_peer'],
  haproxy: ['haproxy_primary', 'haproxy_replicas', 'haproxy_stats'],
  pgbouncer: ['pgbouncer', 'pgbouncer_exporter'],
  monitoring: ['prometheus', 'grafana', 'alertmanager'],
  backup: ['pgbackrest', 'restore_scratch'],
};
const EVERY_HOST_PORTS: PortName[] = ['node_exporter'];

/** The services a host with these roles listens for, each once (the port clash rule and the firewall read the same list). */
export function servicesOf(h: { roles: readonly Role[] }): PortName[] {
  return [...new Set([...EVERY_HOST_PORTS, ...h.roles.flatMap((r) => ROLE_PORTS[r])])];
}

export function inventoryRules(inv: ParsedInventory): RuleProblem[] {
  return [...uniqueHosts(inv), ...etcdQuorum(inv), ...portClashes(inv), ...synchronousCount(inv), ...timings(inv), ...hostsInsideAllowedNetworks(inv), ...alertingRules(inv, monitoringPorts(inv))];
}

/** Ports in use on the monitoring hosts, with what uses them (the lab receiver must find a free one). */
function monitoringPorts(inv: ParsedInventory): Map<number, string> {
  const used = new Map<number, string>();
  for (const h of inv.hosts.filter((x) => x.roles.includes('monitoring'))) {
    for (const svc of servicesOf(h)) used.set(inv.ports[svc], svc);
  }
  return used;
}

/**
 * pg_hba and Patroni's REST allowlist admit only network.allowed_cidrs. A host
 * outside them would install fine and then fail at replication or routing
 * with an authentication error on another host; say so before anything runs.
 */
function hostsInsideAllowedNetworks(inv: ParsedInventory): RuleProblem[] {
  const cidrs = inv.network.allowed_cidrs;
  if (!cidrs) return [];
  // Each network is at most a /8 (the schema), but enough of them add up to the whole internet.
  if (coveredAddresses(cidrs) === 2 ** 32) {
    return [
      {
        paths: [['network', 'allowed_cidrs']],
        at: 'key',
        message: `together these networks cover every IPv4 address (${cidrs.length} entries): anyone on the internet could connect; list only your own networks`,
      },
    ];
  }
  return inv.hosts.flatMap((h, i) =>
    cidrs.some((c) => insideCidr(h.address, c))
      ? []
      : [
          {
            paths: [['hosts', i, 'address']],
            message: `${h.name} (${h.address}) is outside network.allowed_cidrs (${cidrs.join(', ')}): PostgreSQL and Patroni would refuse its connections; add its network to network.allowed_cidrs, or leave that list out to allow exactly the inventory's hosts`,
          },
        ],
  );
}

const ipv4 = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/** How many distinct addresses a list of (validated) CIDRs covers: overlaps count once. */
export function coveredAddresses(cidrs: string[]): number {
  const ranges = cidrs
    .map((c) => {
      const [net = '', len = '32'] = c.split('/');
      const size = 2 ** (32 - Number(len));
      const start = Math.floor(ipv4(net) / size) * size;
      return [start, start + size] as const;
    })
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = 0;
  for (const [s, e] of ranges) {
    if (e <= end) continue;
    total += e - Math.max(s, end);
    end = e;
  }
  return total;
}

/** Whether IPv4 `address` lies in `cidr` (both already validated by the schema). */
export function insideCidr(address: string, cidr: string): boolean {
  const [net = '', len = '32'] = cidr.split('/');
  const bits = Number(len);
  const size = 2 ** (32 - bits);
  return Math.floor(ipv4(address) / size) === Math.floor(ipv4(net) / size);
}

function uniqueHosts(inv: ParsedInventory): RuleProblem[] {
  const out: RuleProblem[] = [];
  const names = new Map<string, number>();
  const addrs = new Map<string, number>();
  inv.hosts.forEach((h, i) => {
    const n = names.get(h.name);
    if (n !== undefined) out.push({ paths: [['hosts', i, 'name']], message: `host name "${h.name}" is already used by hosts[${n}]; every host needs its own name` });
    else names.set(h.name, i);
    const a = addrs.get(h.address);
    if (a !== undefined) {
      out.push({
        paths: [['hosts', i, 'address']],
        message: `address ${h.address} is already used by hosts[${a}] (${inv.hosts[a]?.name}); every host needs its own address`,
      });
    } else addrs.set(h.address, i);
  });
  return out;
}

function etcdQuorum(inv: ParsedInventory): RuleProblem[] {
  const n = inv.hosts.filter((h) => h.roles.includes('etcd')).length;
  const at = { paths: [['hosts']], at: 'key' as const };
  if (n > 7) return [{ ...at, message: `${n} hosts have the etcd role; use 3 or 5 (more than 7 members slows every write and adds no useful fault tolerance)` }];
  if (n === 1) {
    return [
      {
        ...at,
        message: '1 host has the etcd role; etcd needs 3 (or 5) members, so that losing one keeps a quorum: with 1, its loss stops every write (Patroni demotes the primary). Add etcd to two more hosts',
      },
    ];
  }
  if (n > 0 && n % 2 === 0) {
    return [
      {
        ...at,
        message: `${n} hosts have the etcd role; etcd needs an odd number of members (3 or 5): ${n} tolerate no more failures than ${n - 1}. Add etcd to one more host or remove it from one`,
      },
    ];
  }
  return [];
}

function portClashes(inv: ParsedInventory): RuleProblem[] {
  // One problem per clashing pair, naming every host it affects.
  const clashes = new Map<string, { port: number; a: PortName; b: PortName; hosts: string[] }>();
  for (const h of inv.hosts) {
    const used = new Map<number, PortName>();
    for (const svc of servicesOf(h)) {
      const p = inv.ports[svc];
      const other = used.get(p);
      if (other === undefined) {
        used.set(p, svc);
        continue;
      }
      const key = `${other}/${svc}`;
      const c = clashes.get(key) ?? { port: p, a: other, b: svc, hosts: [] };
      c.hosts.push(h.name);
      clashes.set(key, c);
    }
  }
  return [...clashes.values()].map((c) => ({
    paths: [
      ['ports', c.b],
      ['ports', c.a],
    ],
    message: `port ${c.port} is used by both ${c.a} and ${c.b} on ${c.hosts.join(', ')}; give one of them another port under \`ports:\``,
  }));
}

function synchronousCount(inv: ParsedInventory): RuleProblem[] {
  const pg = inv.hosts.filter((h) => h.roles.includes('postgres')).length;
  const n = inv.postgres.synchronous_node_count;
  if (pg < 2 || n <= pg - 1) return [];
  return [
    {
      paths: [['postgres', 'synchronous_node_count']],
      message: `synchronous_node_count ${n} needs ${n} standbys, but ${pg} postgres hosts give only ${pg - 1}; use at most ${pg - 1}`,
    },
  ];
}

function timings(inv: ParsedInventory): RuleProblem[] {
  return validateTimings(resolveTimings(inv.timings)).map((p) => ({
    paths: [['timings', p.field], ['timings', 'profile'], ['timings']],
    message: p.message,
  }));
}
