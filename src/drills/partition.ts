import { HostError } from '../errors.js';
import type { Host } from '../hosts/types.js';

/**
 * Cutting one host off from its peers, for real.
 *
 * On real hosts every machine has its own address, so nftables rules on the
 * victim that drop traffic to and from the peers' addresses are a faithful
 * partition (SSH is exempt, or dpgc could not heal it).
 *
 * In the lab every "host" is a loopback address on one machine, and clients
 * do not bind a source address: a connection from db1's Patroni to db2's etcd
 * comes from 127.0.0.1, exactly like one from db3's. Address rules alone
 * cannot tell them apart (docs/lab-facts.md). So the victim's processes are moved into
 * their own cgroup v2 group, and rules classify each packet's two ends:
 * the sending side is the victim when its socket is in that cgroup or its
 * source is the victim's address (its listening sockets); the receiving side
 * is the victim when its socket is in the cgroup or the destination is the
 * victim's address. A packet crossing between victim and non-victim is
 * dropped. Output marks the sender, input checks the receiver (the mark
 * survives loopback). Sockets opened before the move keep their old cgroup,
 * so the victim's existing client connections are destroyed (`ss -K`) and
 * reopen inside the group. A dead-man timer on the host removes the rules
 * even if dpgc dies.
 */
export const PARTITION_MARK = 0x64706763; // "dpgc"
const CGROUP_FS = '/sys/fs/cgroup';

export function labPartitionRules(o: { table: string; cgroup: string; address: string }): string {
  const inCg = `socket cgroupv2 level 1 "${o.cgroup}"`;
  const mark = `0x${PARTITION_MARK.toString(16)}`;
  return [
    `table inet ${o.table} {`,
    '  chain out {',
    '    type filter hook output priority -10; policy accept;',
    `    ${inCg} meta mark set ${mark}`,
    `    ip saddr ${o.address} meta mark set ${mark}`,
    '  }',
    '  chain in {',
    '    type filter hook input priority -10; policy accept;',
    `    meta mark ${mark} ip daddr ${o.address} accept`,
    `    meta mark ${mark} ${inCg} accept`,
    `    meta mark ${mark} counter drop`,
    `    ip daddr ${o.address} counter drop`,
    `    ${inCg} counter drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export function hostPartitionRules(o: { table: string; peers: readonly string[]; sshPort: number }): string {
  const set = `{ ${o.peers.join(', ')} }`;
  return [
    `table inet ${o.table} {`,
    '  chain in {',
    '    type filter hook input priority -10; policy accept;',
    `    tcp dport ${o.sshPort} accept`,
    `    ip saddr ${set} counter drop`,
    '  }',
    '  chain out {',
    '    type filter hook output priority -10; policy accept;',
    `    tcp sport ${o.sshPort} accept`,
    `    ip daddr ${set} counter drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * `ss -tnpH` lines → the connections of the given processes whose local
 * address is not `bound` (their client sockets). The State column is absent
 * when ss filters by state, so the two addresses are found by their shape.
 */
export function clientSocketsOf(ssOutput: string, pids: ReadonlySet<number>, bound: string): { local: string; peer: string }[] {
  const out: { local: string; peer: string }[] = [];
  for (const line of ssOutput.split('\n')) {
    const owners = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
    if (!owners.some((p) => pids.has(p))) continue;
    const addrs = line.split(/\s+/).filter((f) => /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\]):\d+$/i.test(f));
    const [local, peer] = addrs;
    if (!local || !peer || local.startsWith(`${bound}:`)) continue;
    out.push({ local, peer });
  }
  return out;
}

function split(hostPort: string): [string, string] {
  const i = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, i), hostPort.slice(i + 1)];
}

export interface LabPartition {
  table: string;
  cgroupDir: string;
  killedSockets: number;
}

/** Where cgroup v2 is mounted, as nftables wants it: a path relative to /sys/fs/cgroup. */
async function cgroup2Mount(host: Host): Promise<string> {
  // Why sh: only for the quoting of a constant awk program; nothing is spliced in.
  const r = await host.exec(['sh', '-c', 'awk \'$3 == "cgroup2" { print $2; exit }\' /proc/mounts'], { mutates: false });
  const mount = r.stdout.trim();
  if (!mount || (mount !== CGROUP_FS && !mount.startsWith(`${CGROUP_FS}/`))) {
    throw new HostError(`${host.name}: partition drills in the lab need cgroup v2 mounted under ${CGROUP_FS} (found: ${mount || 'none'})`, {
      hint: 'Mount it (`mount -t cgroup2 none /sys/fs/cgroup/unified`) or run the partition drill on real hosts.',
    });
  }
  return mount;
}

export async function partitionLabHost(host: Host, o: { table: string; address: string; pids: number[]; deadManS: number }): Promise<LabPartition> {
  const mount = await cgroup2Mount(host);
  const cgroupDir = `${mount}/${o.table}`;
  const rel = cgroupDir.slice(CGROUP_FS.length + 1);
  await host.exec(['mkdir', '-p', cgroupDir]);
  // One process at a time: a pid that exited since it was listed is no reason to stop.
  // Why sh: a loop that tolerates exited pids; directory and pids are positional, never spliced in.
  await host.exec(['sh', '-c', 'd=$1; shift; for p in "$@"; do echo "$p" > "$d/cgroup.procs" 2>/dev/null || true; done', 'sh', cgroupDir, ...o.pids.map(String)]);
  await host.exec(['nft', '-f', '-'], { input: labPartitionRules({ table: o.table, cgroup: rel, address: o.address }) });
  await deadMan(host, o.table, o.deadManS);
  const ss = await host.exec(['ss', '-tnpH', 'state', 'established'], { mutates: false });
  // Members of the cgroup now, including threads' owners that forked since the listing.
  const procs = await host.readFile(`${cgroupDir}/cgroup.procs`);
  const pids = new Set([...o.pids, ...(procs ?? '').split('\n').filter(Boolean).map(Number)]);
  const socks = clientSocketsOf(ss.stdout, pids, o.address);
  for (const s of socks) {
    const [la, lp] = split(s.local);
    const [pa, pp] = split(s.peer);
    await host.exec(['ss', '-K', 'src', la, 'sport', '=', `:${lp}`, 'dst', pa, 'dport', '=', `:${pp}`], { allowFailure: true });
  }
  return { table: o.table, cgroupDir, killedSockets: socks.length };
}

export async function healLabHost(host: Host, p: Pick<LabPartition, 'table' | 'cgroupDir'>): Promise<void> {
  await host.exec(['nft', 'delete', 'table', 'inet', p.table], { allowFailure: true });
  const parent = p.cgroupDir.replace(/\/[^/]+$/, '');
  await host.exec(
    // Why sh: move every member out, then rmdir (an empty cgroup only); both directories are "$1" and "$2".
    ['sh', '-c', 'd=$1; [ -d "$d" ] || exit 0; for p in $(cat "$d/cgroup.procs"); do echo "$p" > "$2/cgroup.procs" 2>/dev/null || true; done; rmdir "$d"', 'sh', p.cgroupDir, parent],
    { allowFailure: true },
  );
}

export async function partitionRealHost(host: Host, o: { table: string; peers: string[]; sshPort: number; deadManS: number }): Promise<void> {
  await host.exec(['nft', '-f', '-'], { input: hostPartitionRules(o) });
  await deadMan(host, o.table, o.deadManS);
}

export async function healRealHost(host: Host, table: string): Promise<void> {
  await host.exec(['nft', 'delete', 'table', 'inet', table], { allowFailure: true });
}

/** Heals the host by itself after `s` seconds, whatever happens to dpgc or the SSH session. */
async function deadMan(host: Host, table: string, s: number): Promise<void> {
  // Why a shell: a detached timer that outlives this SSH session. Seconds and table are "$1" and "$2", never spliced in.
  await host.exec(['sh', '-c', 'setsid sh -c \'sleep "$1"; nft delete table inet "$2" 2>/dev/null\' sh "$1" "$2" >/dev/null 2>&1 </dev/null &', 'sh', String(Math.ceil(s)), table]);
}
