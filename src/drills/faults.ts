import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import { etcdService, etcdUser } from '../components/etcd.js';
import { PATRONI_SERVICE, patroniService, switchover } from '../components/patroni.js';
import { supervisedChild } from '../hosts/supervise.js';
import { healLabHost, healRealHost, partitionLabHost, partitionRealHost, type LabPartition } from './partition.js';

/**
 * Each fault is done to a host through its Host (argv over the local or SSH
 * transport), so the lab and real machines get the same drill. A fault's
 * `inject` returns as soon as the fault is in place; `heal` undoes what can
 * be undone (SIGCONT, rules removed) or restarts what was stopped.
 */
export interface Fault {
  /** When the fault was applied (just before the signal, stop, request or rule load). */
  at: number;
  /** What was done, for the report: "SIGKILL patroni (pid 123) and postgres (pid 456 + 9 children) on db1". */
  description: string;
  /** Resolves when a fault that runs in the background (switchover, graceful stop) has finished. */
  settled: Promise<void>;
  heal(): Promise<string>;
}

export interface FaultDeps {
  inventory: Inventory;
  secrets: Pick<Secrets, 'get'>;
  pool: HostPool;
}

export interface PostgresProcesses {
  patroni: number | undefined;
  /** The lab's restart loop around Patroni (supervise.ts), when there is one. */
  supervisor: number | undefined;
  postmaster: number | undefined;
  children: number[];
}

/**
 * Patroni's pid from its service (the daemon itself, not the lab's restart
 * loop around it), the postmaster's from the first line of postmaster.pid,
 * and the postmaster's children.
 */
export async function postgresProcesses(node: Node): Promise<PostgresProcesses> {
  const st = await node.services.status({ name: PATRONI_SERVICE });
  const child = st.running ? await supervisedChild(node.host, st.pid) : undefined;
  const supervisor = child === undefined ? undefined : st.running ? st.pid : undefined;
  const patroni = child ?? (st.running ? st.pid : undefined);
  const pidFile = await node.host.readFile(`${node.paths.pgData}/postmaster.pid`);
  let postmaster = Number(pidFile?.split('\n')[0]?.trim());
  let children: number[] = [];
  if (Number.isInteger(postmaster) && postmaster > 0) {
    const r = await node.host.exec(['ps', '-o', 'pid=', '--ppid', String(postmaster)], { mutates: false, allowFailure: true });
    const alive = await node.host.exec(['kill', '-0', String(postmaster)], { mutates: false, allowFailure: true });
    if (alive.exitCode !== 0) postmaster = NaN;
    children = r.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
  }
  return { patroni, supervisor, postmaster: Number.isInteger(postmaster) && postmaster > 0 ? postmaster : undefined, children };
}

function describeProcs(p: PostgresProcesses, host: string): string {
  const parts = [p.patroni ? `patroni (pid ${p.patroni})` : 'patroni (not running)', p.postmaster ? `postgres (pid ${p.postmaster} + ${p.children.length} children)` : 'postgres (not running)'];
  return `${parts.join(' and ')} on ${host}`;
}

/** Patroni and PostgreSQL: what a crash kills and a freeze stops. Not the restart loop: that is the service manager. */
export function allPids(p: PostgresProcesses): string[] {
  return [p.patroni, p.postmaster, ...p.children].filter((x): x is number => x !== undefined).map(String);
}

async function signal(node: Node, sig: 'KILL' | 'STOP' | 'CONT', pids: string[]): Promise<void> {
  if (pids.length === 0) throw new HostError(`${node.spec.name}: no process to send SIG${sig} to`);
  // One kill for all: the host "dies" or "hangs" at one instant, not process by process. A backend
  // that exited between listing and signal makes kill exit 1 ("No such process") although every
  // other pid was signalled: that is not a failed fault (it failed 2 of 3 bench invocations of crash).
  const r = await node.host.exec(['kill', `-${sig}`, ...pids], { allowFailure: true });
  const other = r.stderr.split('\n').filter((l) => l.trim() && !/No such process/.test(l));
  if (r.exitCode !== 0 && other.length) throw new HostError(`${node.spec.name}: kill -${sig} failed: ${other.join('; ')}`);
}

async function startPatroni(d: FaultDeps, node: Node): Promise<string> {
  const r = await node.services.start(patroniService(d.inventory, node));
  return r.changed ? `started Patroni on ${node.spec.name} again` : `Patroni on ${node.spec.name} was already running`;
}

const done = Promise.resolve();

/**
 * Host death: Patroni, PostgreSQL and whatever would restart them die at one
 * instant, and nothing comes back until the drill restores the host. On a
 * systemd host a runtime drop-in turns the unit's restart off first (it lives
 * under /run and is removed by the restore); in the lab the restart loop dies
 * with the rest.
 */
export async function killHost(d: FaultDeps, victim: string): Promise<Fault> {
  const node = await d.pool.node(victim);
  const p = await postgresProcesses(node);
  const systemd = node.spec.services === 'systemd';
  if (systemd) await setRestartOff(node, true);
  const at = Date.now();
  await signal(node, 'KILL', [...(p.supervisor ? [String(p.supervisor)] : []), ...allPids(p)]);
  return {
    at,
    description: `SIGKILL ${describeProcs(p, victim)}${p.supervisor ? ` and its restart loop (pid ${p.supervisor})` : ''}: the host is dead`,
    settled: done,
    heal: async () => {
      if (systemd) await setRestartOff(node, false);
      return startPatroni(d, node);
    },
  };
}

/**
 * A crash on a live host: Patroni and PostgreSQL die, the service manager
 * starts Patroni again within a second, and Patroni, finding its own leader
 * key still valid, resumes as leader. Nothing to restore but a check.
 */
export async function crashProcesses(d: FaultDeps, victim: string): Promise<Fault> {
  const node = await d.pool.node(victim);
  const p = await postgresProcesses(node);
  const at = Date.now();
  await signal(node, 'KILL', allPids(p));
  return { at, description: `SIGKILL ${describeProcs(p, victim)}; the service manager restarts Patroni`, settled: done, heal: () => startPatroni(d, node) };
}

const DRILL_DROPIN = `/run/systemd/system/dpgc-${PATRONI_SERVICE}.service.d/dpgc-drill.conf`;

async function setRestartOff(node: Node, off: boolean): Promise<void> {
  if (off) await node.host.writeFile(DRILL_DROPIN, '# dpgc failover-test (host death): no restart until the drill restores the host\n[Service]\nRestart=no\n', { mode: 0o644 });
  else await node.host.exec(['rm', '-f', DRILL_DROPIN]);
  await node.host.exec(['systemctl', 'daemon-reload']);
}

export async function freezeHost(d: FaultDeps, victim: string): Promise<Fault> {
  const node = await d.pool.node(victim);
  const p = await postgresProcesses(node);
  const pids = allPids(p);
  const at = Date.now();
  await signal(node, 'STOP', pids);
  return {
    at,
    description: `SIGSTOP ${describeProcs(p, victim)}`,
    settled: done,
    heal: async () => {
      await signal(node, 'CONT', pids);
      return `SIGCONT to ${pids.length} processes on ${victim}`;
    },
  };
}

export async function stopPatroni(d: FaultDeps, victim: string): Promise<Fault> {
  const node = await d.pool.node(victim);
  // The stop waits for Patroni to shut PostgreSQL down: that is the drill, so it runs in the background.
  const at = Date.now();
  const settled = node.services.stop({ name: PATRONI_SERVICE, stopTimeoutMs: 120_000 }).then(() => undefined);
  return { at, description: `graceful stop of Patroni on ${victim} (SIGTERM)`, settled, heal: async () => (await settled, startPatroni(d, node)) };
}

export function plannedSwitchover(d: FaultDeps, leader: string): Fault {
  const at = Date.now();
  const settled = switchover(d.inventory, d.secrets, { timeoutMs: 120_000 }).then(() => undefined);
  return { at, description: `planned switchover away from ${leader} through Patroni (POST /switchover)`, settled, heal: async () => (await settled, 'nothing to restore') };
}

export async function killEtcdMember(d: FaultDeps, victim: string): Promise<Fault> {
  const node = await d.pool.node(victim);
  const st = await node.services.status({ name: 'etcd' });
  if (!st.running) throw new HostError(`${victim}: etcd is not running (${st.reason})`);
  const at = Date.now();
  await signal(node, 'KILL', [String(st.pid)]);
  return {
    at,
    description: `SIGKILL etcd (pid ${st.pid}) on ${victim}`,
    settled: done,
    heal: async () => {
      const r = await node.services.start(etcdService(d.inventory, node, await etcdUser(node)));
      return r.changed ? `started etcd on ${victim} again` : `etcd on ${victim} was already running`;
    },
  };
}

export async function killReplica(d: FaultDeps, victim: string): Promise<Fault> {
  return killHost(d, victim);
}

export async function partitionHost(d: FaultDeps, victim: string, run: string, deadManS: number): Promise<Fault> {
  const node = await d.pool.node(victim);
  const table = `dpgc_part_${run.replace(/[^a-z0-9]/gi, '')}`;
  if (d.inventory.lab) {
    const p = await postgresProcesses(node);
    const etcd = node.spec.roles.includes('etcd') ? await node.services.status({ name: 'etcd' }) : undefined;
    const pids = [...allPids(p).map(Number), ...(etcd?.running ? [etcd.pid] : [])];
    const at = Date.now();
    const part: LabPartition = await partitionLabHost(node.host, { table, address: node.spec.address, pids, deadManS });
    return {
      at,
      description: `isolated ${victim} (${pids.length} processes in cgroup ${part.cgroupDir}, nftables table ${table}, ${part.killedSockets} client connections reset)`,
      settled: done,
      heal: async () => {
        await healLabHost(node.host, part);
        return `removed nftables table ${table} and cgroup ${part.cgroupDir} on ${victim}`;
      },
    };
  }
  const peers = d.inventory.hosts.filter((h) => h.name !== victim).map((h) => h.address);
  const at = Date.now();
  await partitionRealHost(node.host, { table, peers, sshPort: node.spec.ssh.port, deadManS });
  return {
    at,
    description: `nftables table ${table} on ${victim} drops traffic to and from ${peers.join(', ')} (SSH exempt)`,
    settled: done,
    heal: async () => {
      await healRealHost(node.host, table);
      return `removed nftables table ${table} on ${victim}`;
    },
  };
}
