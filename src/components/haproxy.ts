import type { HostSpec, Inventory } from '../config/schema.js';
import type { HostPaths } from '../config/paths.js';
import type { Secrets } from '../config/secrets.js';
import { HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { render } from '../templates.js';
import { currentLeader } from './cluster.js';
import { installValidated, runValidator } from './config-file.js';
import { ensurePackages, HA_PACKAGES } from './ha-packages.js';
import { MAX_LAG_BYTES } from './patroni.js';
import { transitionCheckMs } from '../config/timings.js';
import { DATABASES } from './endpoints.js';
import { baseInstanceBackends, type PgbouncerBackend } from './pgbouncer.js';
import { liveSprint } from './deployed.js';
import { waitUntil } from '../wait.js';
import { tlsProbe } from './web-client.js';

/**
 * HAProxy in front of the Patroni members: :5000 reaches only the leader
 * (Patroni's /primary answers 200 only there), :5001 the replicas. Runs in
 * master-worker mode (-W) in the foreground, so the supervised pid is the
 * master and a reload (SIGUSR2) re-executes it under the same pid.
 */
export const HAPROXY_SERVICE = 'haproxy';
export const STATS_USER = 'dpgc';
/**
 * Clients of :5000/:5001 are PgBouncer's server connections (bounded by its
 * pool sizes, not by its max_client_conn) and operators: a few thousand is
 * ample, and keeps the descriptor need (2 per connection) under common hard limits.
 */
export const HAPROXY_MAXCONN = 4096;
export const BACKENDS = { primary: 'primary', replicas: 'replicas' } as const;

type Inv = Pick<Inventory, 'hosts' | 'ports' | 'timings'>;

/** Which members HAProxy checks over TLS (verified against `caFile`, by each member's name), the others in plaintext. */
export interface RestChecks {
  tls: string[];
  caFile: string;
}

export function renderHaproxyConfig(inv: Inv, host: Pick<HostSpec, 'name' | 'address'>, paths: Pick<HostPaths, 'haproxySocket'>, statsPassword: string, checks?: RestChecks): string {
  if (!/^[A-Za-z0-9_.~+/=-]+$/.test(statsPassword)) throw new HostError('the haproxy_stats secret has characters HAProxy would need escaped; use letters, digits and -_.~+/=');
  const t = inv.timings;
  return render('haproxy/haproxy.cfg.eta', {
    hostName: host.name,
    address: host.address,
    socket: paths.haproxySocket,
    maxconn: HAPROXY_MAXCONN,
    inter: t.check_inter_ms,
    fastinter: transitionCheckMs(t),
    fall: t.check_fall,
    rise: t.check_rise,
    primaryPort: inv.ports.haproxy_primary,
    replicasPort: inv.ports.haproxy_replicas,
    statsPort: inv.ports.haproxy_stats,
    pgPort: inv.ports.postgres,
    restPort: inv.ports.patroni,
    maxLagBytes: MAX_LAG_BYTES,
    servers: inv.hosts.filter((h) => h.roles.includes('postgres')).map((h) => ({ name: h.name, address: h.address, ...(checks?.tls.includes(h.name) ? { tlsCa: checks.caFile } : {}) })),
    statsUser: STATS_USER,
    statsPassword,
  });
}

export async function haproxyUser(node: Pick<Node, 'host'>): Promise<string> {
  const r = await node.host.exec(['id', '-u', 'haproxy'], { mutates: false, allowFailure: true });
  return r.exitCode === 0 ? 'haproxy' : 'root';
}

export function haproxyService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>, user: string): ServiceSpec {
  return {
    name: HAPROXY_SERVICE,
    user,
    argv: ['haproxy', '-W', '-db', '-f', node.paths.haproxyCfg],
    listen: { address: node.spec.address, port: inv.ports.haproxy_stats },
    // Two descriptors per proxied connection, plus listeners and checks.
    nofile: 2 * HAPROXY_MAXCONN + 1024,
    startTimeoutMs: 20_000,
  };
}

export async function installHaproxy(node: Node): Promise<boolean> {
  return ensurePackages(node, HA_PACKAGES.haproxy);
}

/** The server lines' check options as HAProxy has them now: the members named with check-ssl. */
export function tlsCheckedIn(cfg: string): string[] {
  return [...new Set([...cfg.matchAll(/^\s*server (\S+) .* check-ssl\b/gm)].map((m) => m[1]!))];
}

/**
 * Each member checked in the protocol its REST API speaks now (patroni-tls.ts
 * switches one member at a time); a member that does not answer keeps the
 * check HAProxy has for it. The CA file is the copy every host keeps in its
 * TLS directory (CertificateAuthority.ensureHostCert).
 */
export async function restChecks(inv: Pick<Inventory, 'hosts' | 'ports'>, node: Pick<Node, 'host' | 'paths'>): Promise<RestChecks> {
  const now = tlsCheckedIn((await node.host.readFile(node.paths.haproxyCfg)) ?? '');
  const members = inv.hosts.filter((h) => h.roles.includes('postgres'));
  const serves = await Promise.all(members.map((h) => tlsProbe(h.address, inv.ports.patroni)));
  return { tls: members.filter((h, i) => serves[i] === 'tls' || (serves[i] === undefined && now.includes(h.name))).map((h) => h.name), caFile: `${node.paths.tlsDir}/ca.crt` };
}

/** Writes the config once `haproxy -c` accepted it; the socket's directory belongs to the daemon's user. */
export async function configureHaproxy(inv: Inv, node: Node, secrets: Pick<Secrets, 'get'> & Partial<Pick<Secrets, 'clusterCa'>>): Promise<boolean> {
  const user = await haproxyUser(node);
  const sockDir = node.paths.haproxySocket.replace(/\/[^/]+$/, '');
  const st = await node.host.exec(['stat', '-c', '%U', sockDir], { mutates: false, allowFailure: true });
  let changed = false;
  if (st.stdout.trim() !== user) {
    // Why sh: three steps in one round trip; directory and owner are "$1" and "$2", never spliced in.
    await node.host.exec(['sh', '-c', 'mkdir -p -- "$1" && chown -- "$2" "$1" && chmod 750 -- "$1"', 'sh', sockDir, `${user}:`]);
    changed = true;
  }
  const checks = await restChecks(inv, node);
  if (checks.tls.length) {
    const ca = await secrets.clusterCa?.();
    if (ca === undefined) throw new HostError('a Patroni member serves its REST API over TLS, but this machine has no cluster CA certificate for HAProxy to check it with', { hint: 'Restore the CA directory beside the inventory (`<inventory>.ca/`) from the machine that set the cluster up.' });
    changed = (await node.host.writeFile(checks.caFile, ca, { mode: 0o644, owner: 'root' })).changed || changed;
  }
  const text = renderHaproxyConfig(inv, node.spec, node.paths, await secrets.get('haproxy_stats'), checks);
  const w = await installValidated(node.host, node.paths.haproxyCfg, text, { mode: 0o600, owner: user }, (candidate) =>
    runValidator(node.host, 'HAProxy config', ['haproxy', '-c', '-f', candidate]),
  );
  return changed || w.changed;
}

/** Started when stopped; reloaded (same pid, SIGUSR2 to the master) when the config changed. */
export async function ensureHaproxyRunning(inv: Inv, node: Node, configChanged: boolean): Promise<{ changed: boolean; note?: string }> {
  const spec = haproxyService(inv, node, await haproxyUser(node));
  const st = await node.services.status(spec);
  if (!st.running) {
    await node.services.start(spec);
    return { changed: true, note: 'started' };
  }
  if (!configChanged) return { changed: false };
  await node.host.exec(['kill', '-USR2', String(st.pid)]);
  return { changed: true, note: 'reloaded' };
}

/**
 * Started or reloaded as needed, then routing: every server counts as UP
 * right after a (re)start (docs/lab-facts.md), so when Patroni already runs the port is
 * not handed back before it routes to the leader only.
 */
export async function ensureHaproxyRouting(inv: Inv, node: Node, configChanged: boolean): Promise<{ changed: boolean; note?: string }> {
  const r = await ensureHaproxyRunning(inv, node, configChanged);
  if (r.changed) {
    const leader = await currentLeader(inv).catch(() => undefined);
    if (leader) await waitForPrimaryRoute(node, { expect: leader.name });
  }
  return r;
}

// ---------------------------------------------------------------- admin socket

export interface ServerStat {
  backend: string;
  server: string;
  /** UP, DOWN, MAINT, "UP 1/2" (going down), "DOWN 1/2" (going up), no check… */
  status: string;
  checkStatus: string;
  currentSessions: number;
  lastChangeS: number;
}

/** `show stat` CSV, server rows only. */
export function parseShowStat(csv: string): ServerStat[] {
  const lines = csv.split('\n').filter((l) => l.trim());
  const header = (lines.shift() ?? '').replace(/^#\s*/, '').split(',');
  const col = (name: string) => header.indexOf(name);
  const [px, sv, status, check, scur, lastchg] = ['pxname', 'svname', 'status', 'check_status', 'scur', 'lastchg'].map(col);
  return lines
    .map((l) => l.split(','))
    .filter((f) => f[sv!] !== 'FRONTEND' && f[sv!] !== 'BACKEND')
    .map((f) => ({
      backend: f[px!] ?? '',
      server: f[sv!] ?? '',
      status: f[status!] ?? '',
      checkStatus: f[check!] ?? '',
      currentSessions: Number(f[scur!] ?? 0),
      lastChangeS: Number(f[lastchg!] ?? 0),
    }));
}

export async function showStat(node: Pick<Node, 'host' | 'paths'>): Promise<ServerStat[]> {
  const r = await node.host.exec(['socat', '-t', '2', 'stdio', `unix-connect:${node.paths.haproxySocket}`], { input: 'show stat\n', mutates: false, timeoutMs: 10_000 });
  return parseShowStat(r.stdout);
}

/**
 * Health checks of one server paused or resumed in the running HAProxy
 * (runtime API, not the file): while paused the server keeps the state it has,
 * so a check about to speak the wrong protocol cannot mark the leader DOWN.
 * A reload starts new workers with the checks the file says.
 */
export async function setHealthChecks(node: Pick<Node, 'host' | 'paths'>, server: string, on: boolean): Promise<void> {
  const cmds = Object.values(BACKENDS).map((b) => `${on ? 'enable' : 'disable'} health ${b}/${server}`);
  await node.host.exec(['socat', '-t', '2', 'stdio', `unix-connect:${node.paths.haproxySocket}`], { input: `${cmds.join(';')}\n`, timeoutMs: 10_000 });
}

export function upServers(stats: ServerStat[], backend: string): string[] {
  // "UP 1/2" (one failed check, going down) still receives connections.
  return stats.filter((s) => s.backend === backend && s.status.startsWith('UP')).map((s) => s.server);
}

/**
 * Right after a start every server counts as UP (docs/lab-facts.md), so the primary port
 * can land on a replica for a moment: wait until exactly the expected server
 * (or, without one, exactly one server) is UP in the primary backend.
 */
export async function waitForPrimaryRoute(node: Pick<Node, 'host' | 'paths'>, opts: { expect?: string; timeoutMs?: number } = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let last: string[] = [];
  return waitUntil(
    async () => {
      try {
        last = upServers(await showStat(node), BACKENDS.primary);
        if (last.length === 1 && (!opts.expect || last[0] === opts.expect)) return last[0]!;
      } catch {
        // the socket appears a moment after the master starts
      }
      return undefined;
    },
    {
      timeoutMs,
      everyMs: 250,
      timeoutError: () =>
        new HostError(
          `${node.host.name}: HAProxy's primary backend has ${last.length ? `${last.join(', ')} UP` : 'no server UP'} after ${timeoutMs / 1000}s${opts.expect ? ` (expected ${opts.expect}, Patroni's leader)` : ''}`,
          { hint: 'Run `dpgc status`: HAProxy routes :5000 to whichever member answers 200 on Patroni\'s /primary.' },
        ),
    },
    `HAProxy on ${node.host.name} routing its primary port to ${opts.expect ?? 'exactly one server'}`,
  );
}

/** Suffix of PgBouncer's read-only aliases, routed to HAProxy's replicas port. */
export const READ_ONLY_SUFFIX = '_ro';

/**
 * PgBouncer's databases once the cluster runs: each database through HAProxy's
 * primary port, and `<db>_ro` through its replicas port, so applications keep
 * one address across failovers.
 */
export function haproxyBackends(inv: Pick<Inventory, 'hosts' | 'ports'>): { alias: string; host: string; port: number; dbname: string }[] {
  const hp = inv.hosts.find((h) => h.roles.includes('haproxy'));
  if (!hp) throw new HostError('no host has the haproxy role');
  return Object.values(DATABASES).flatMap((d) => [
    { alias: d.name, host: hp.address, port: inv.ports.haproxy_primary, dbname: d.name },
    { alias: `${d.name}${READ_ONLY_SUFFIX}`, host: hp.address, port: inv.ports.haproxy_replicas, dbname: d.name },
  ]);
}

/**
 * Where PgBouncer should point, given the sprint the live cluster is at: at
 * HAProxy once Patroni runs the cluster (sprint 3), else at the sprint-0 base
 * instance.
 */
export function pgbouncerTargetsAt(inv: Pick<Inventory, 'hosts' | 'ports' | 'file'>, sprint: number): PgbouncerBackend[] {
  return sprint >= 3 && inv.hosts.some((h) => h.roles.includes('haproxy')) ? haproxyBackends(inv) : baseInstanceBackends(inv);
}

/**
 * Where PgBouncer should point right now, from the inventory and the live
 * cluster (src/components/deployed.ts), never the state file. Sprint 1 uses
 * it too, so re-running sprint 1 on a running cluster never re-points
 * applications at one node that may be a replica by then.
 */
export async function pgbouncerTargets(ctx: { inventory: Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'file'>; pool: HostPool }): Promise<PgbouncerBackend[]> {
  return pgbouncerTargetsAt(ctx.inventory, await liveSprint(ctx));
}
