import type { HostSpec, Inventory, Role } from '../config/schema.js';
import { insideCidr, servicesOf } from '../config/rules.js';
import { CommandError, ConfigError, HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import type { Host } from '../hosts/types.js';
import { render } from '../templates.js';
import { waitUntil } from '../wait.js';
import { installValidated, runValidator } from './config-file.js';

/**
 * The host firewall (sprint 5): one nftables table per host, rendered from
 * the inventory, allowing exactly the ports the host's roles listen on.
 * Who connects to what, and so which addresses each port admits, is worked
 * out in docs/firewall.md. In short: the ports only other cluster hosts use
 * (etcd's peer port, pgBackRest's TLS server, the lab's alert receiver) admit
 * exactly those hosts; every other port admits network.allowed_cidrs, where
 * applications connect from and where dpgc itself connects from (it reads
 * Patroni, etcd, Prometheus, Alertmanager, HAProxy's stats and the exporters
 * directly, and pg_hba already admits the same networks). SSH is one of them,
 * so whoever dpgc reaches a host from can always reach it again; a rule set
 * that would refuse dpgc's own SSH session is refused before it is loaded.
 *
 * A lab host is an address on this machine's loopback, shared with everything
 * else here, and its clients connect from 127.0.0.1 whichever "host" they run
 * on (docs/lab-facts.md): its table filters only packets to its own address,
 * rejecting every TCP port it does not need, and cannot tell sources apart.
 */
type Inv = Pick<Inventory, 'cluster' | 'lab' | 'hosts' | 'ports' | 'network' | 'alerting' | 'file'>;
type Spec = Pick<HostSpec, 'name' | 'address' | 'roles' | 'ssh'>;

export interface FirewallRule {
  /** What listens: a `ports` name of the inventory, `ssh` or `lab_receiver`. */
  service: string;
  port: number;
  /** `clients`: network.allowed_cidrs. Otherwise exactly these addresses (the host itself among them). */
  from: 'clients' | string[];
}

export interface Firewall {
  table: string;
  cluster: string;
  host: string;
  address: string;
  lab: boolean;
  clients: string[];
  rules: FirewallRule[];
}

export const FIREWALL_UNIT = 'dpgc-firewall.service';

/**
 * dpgc's table on a host. The address is part of the name: every lab is
 * called dpgc-lab and all of them share this machine's ruleset, so the
 * address is what keeps two labs (and the four hosts of one) apart. The
 * partition drills' tables are dpgc_part_*.
 */
export function firewallTable(inv: Pick<Inventory, 'cluster'>, h: Pick<HostSpec, 'address'>): string {
  return `dpgc_fw_${`${inv.cluster}_${h.address}`.replace(/[^A-Za-z0-9]/g, '_')}`;
}

/** The cluster hosts a peer-only service is reached from; undefined for a port open to network.allowed_cidrs. */
function peersOf(inv: Pick<Inventory, 'hosts'>, h: Spec, service: string): string[] | undefined {
  const withRole = (r: Role) => inv.hosts.filter((x) => x.roles.includes(r)).map((x) => x.address);
  switch (service) {
    case 'etcd_peer':
      return withRole('etcd');
    // The repository host calls the database hosts' servers (backups); they call its server (archive-push, restores).
    case 'pgbackrest':
      return [...(h.roles.includes('postgres') ? withRole('backup') : []), ...(h.roles.includes('backup') ? withRole('postgres') : [])];
    // mtail serves plaintext without auth (components/security-metrics.ts): only Prometheus scrapes it.
    case 'mtail':
      return withRole('monitoring');
    // Alertmanager posts its notifications there.
    case 'lab_receiver':
      return withRole('monitoring');
    default:
      return undefined;
  }
}

/** Pure: the rules of one host. */
export function firewallFor(inv: Omit<Inv, 'file'>, h: Spec): Firewall {
  const services = [
    { service: 'ssh', port: h.ssh.port },
    ...servicesOf(h).map((s) => ({ service: s, port: inv.ports[s] })),
    ...(h.roles.includes('monitoring') && inv.alerting.lab_receiver ? [{ service: 'lab_receiver', port: inv.alerting.lab_receiver.port }] : []),
  ];
  const rules = services.map(({ service, port }): FirewallRule => {
    const peers = peersOf(inv, h, service);
    // The host itself always: dpgc checks that a daemon it started listens by connecting from the daemon's own host.
    return { service, port, from: peers ? [...new Set([h.address, ...peers])] : 'clients' };
  });
  return { table: firewallTable(inv, h), cluster: inv.cluster, host: h.name, address: h.address, lab: inv.lab, clients: inv.network.allowed_cidrs, rules };
}

export function renderFirewall(fw: Firewall): string {
  return render('nftables/firewall.nft.eta', fw);
}

export function renderFirewallUnit(fw: Pick<Firewall, 'cluster' | 'table'>, file: string): string {
  return render('nftables/dpgc-firewall.service.eta', { cluster: fw.cluster, table: fw.table, file });
}

/**
 * Pure: whether the rendered rules let a new TCP connection in, as nftables
 * would decide it. What the lab's table does not filter (another
 * destination) is let in.
 */
export function admits(fw: Firewall, c: { source: string; dest: string; port: number }): boolean {
  const source = c.source.replace(/^::ffff:/i, '');
  const dest = c.dest.replace(/^::ffff:/i, '');
  if (fw.lab) return dest !== fw.address || fw.rules.some((r) => r.port === c.port);
  if (dest.startsWith('127.') || dest === '::1') return true;
  if (source.includes(':')) return false;
  return fw.rules.some((r) => r.port === c.port && (r.from === 'clients' ? fw.clients : r.from).some((a) => insideCidr(source, a)));
}

/** Pure: what differs between two listings, line by line (`missing` from the live table, `not rendered` but live). */
export function tableDifferences(live: string, wanted: string): string[] {
  const lines = (t: string) => t.split('\n').map((l) => l.trim()).filter(Boolean);
  const less = (a: string[], b: string[]) => {
    const left = [...b];
    return a.filter((l) => {
      const i = left.indexOf(l);
      if (i === -1) return true;
      left.splice(i, 1);
      return false;
    });
  };
  const [l, w] = [lines(live), lines(wanted)];
  const out = [...less(w, l).map((x) => `missing: ${x}`), ...less(l, w).map((x) => `not rendered: ${x}`)];
  return out.length || live === wanted ? out : ['the same rules in another order'];
}

/** `ufw status` and `firewall-cmd --state` output → the firewall manager that is active, if any. */
export function activeFirewallManager(out: string): 'ufw' | 'firewalld' | undefined {
  if (/^Status: active$/m.test(out)) return 'ufw';
  if (/^running$/m.test(out)) return 'firewalld';
  return undefined;
}

/** nftables' own listing of dpgc's table on the host (`-s`: counters without their values), undefined when there is none. */
export async function liveTable(host: Host, table: string): Promise<string | undefined> {
  const r = await host.exec(['nft', '-s', 'list', 'table', 'inet', table], { mutates: false, allowFailure: true });
  if (r.exitCode === 0) return r.stdout;
  if (/No such file or directory/.test(r.stderr)) return undefined;
  throw new CommandError({ host: host.name, command: `nft -s list table inet ${table}`, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr });
}

/**
 * The same listing for the rendered rules: they are loaded into a network
 * namespace of their own, which nothing else uses and which ends with the
 * command, so nftables itself prints them as it prints the live table (its
 * order, its spelling), and the two compare line by line. Changes nothing on
 * the host, so a dry run reads it too.
 */
export async function renderedTable(host: Host, table: string, text: string): Promise<string> {
  // Why sh: load, then list, in the one throwaway namespace; the table name is "$1", never spliced in.
  const r = await host.exec(['unshare', '--net', 'sh', '-c', 'nft -f - && nft -s list table inet "$1"', 'sh', table], { mutates: false, input: text, allowFailure: true });
  if (r.exitCode !== 0) {
    throw new HostError(`${host.name}: the rendered firewall was rejected by \`nft\`; nothing was installed:\n    ${r.stderr.trim().split('\n').slice(-10).join('\n    ')}`, {
      hint: 'This is a dpgc template or inventory problem: check the addresses and ports in the inventory, and report it if they look right.',
    });
  }
  return r.stdout;
}

export interface FirewallState {
  fw: Firewall;
  text: string;
  /** undefined: there is no table. */
  live: string | undefined;
  differences: string[];
}

/** The host's table against the rendered one: what `ensureFirewall` changes and `s5.firewall.enforced` reports. */
export async function firewallState(inv: Omit<Inv, 'file'>, node: Pick<Node, 'host' | 'spec'>): Promise<FirewallState> {
  const fw = firewallFor(inv, node.spec);
  const text = renderFirewall(fw);
  const [live, wanted] = await Promise.all([liveTable(node.host, fw.table), renderedTable(node.host, fw.table, text)]);
  return { fw, text, live, differences: live === undefined ? [] : tableDifferences(live, wanted) };
}

/** Why sh: a walk up /proc, one grep per ancestor; nothing is spliced in. After "comm) " in /proc/<pid>/stat, the second field is the parent. */
export const SSH_SESSION_SCRIPT =
  '[ -n "$SSH_CONNECTION" ] && { echo "$SSH_CONNECTION"; exit 0; }; p=$PPID; ' +
  'while [ "$p" -gt 1 ] 2>/dev/null; do ' +
  'v=$(grep -a -z -m1 "^SSH_CONNECTION=" /proc/$p/environ 2>/dev/null | tr -d "\\000"); ' +
  'if [ -n "$v" ]; then echo "${v#SSH_CONNECTION=}"; exit 0; fi; ' +
  'read -r s < /proc/$p/stat || exit 0; s=${s##*) }; set -- $s; p=$2; done';

/**
 * The SSH connection this host's commands arrive through, as the host sees
 * it (`SSH_CONNECTION`: client address and port, server address and port),
 * from the command's environment or its nearest ancestor's: sudo drops it
 * from the command's own. undefined when dpgc does not come in over SSH (the
 * local transport) and nobody's session started it either.
 */
export async function sshSession(host: Host): Promise<{ source: string; dest: string; port: number } | undefined> {
  const r = await host.exec(['sh', '-c', SSH_SESSION_SCRIPT], { mutates: false, allowFailure: true });
  const [source, , dest, port] = r.stdout.trim().split(/\s+/);
  return source && dest && port ? { source, dest, port: Number(port) } : undefined;
}

/** Throws before anything is loaded when the rules would refuse a new SSH connection from where dpgc's own comes from. */
export function refuseLockout(inv: Pick<Inventory, 'file'>, fw: Firewall, session: { source: string; dest: string; port: number } | undefined): void {
  if (!session || admits(fw, session)) return;
  throw new ConfigError(
    `${inv.file}: the firewall rendered for ${fw.host} would refuse new SSH connections from ${session.source}, where dpgc's own session to it comes from (${session.source} → ${session.dest}:${session.port}); nothing was changed on ${fw.host}`,
    { hint: `Add ${session.source}/32 (or its network) to network.allowed_cidrs: dpgc reaches SSH, PostgreSQL and Patroni from there, and the firewall admits exactly those networks.` },
  );
}

async function otherFirewall(host: Host): Promise<'ufw' | 'firewalld' | undefined> {
  // Why sh: either tool may be missing; the script is fixed text.
  const script = 'if command -v ufw >/dev/null 2>&1; then ufw status 2>/dev/null; fi; if command -v firewall-cmd >/dev/null 2>&1; then firewall-cmd --state 2>/dev/null; fi; true';
  return activeFirewallManager((await host.exec(['sh', '-c', script], { mutates: false, allowFailure: true })).stdout);
}

function otherFirewallError(inv: Inv, fw: Firewall, which: 'ufw' | 'firewalld'): HostError {
  const ports = fw.rules.map((r) => `${r.port}/tcp (${r.service}) from ${r.from === 'clients' ? fw.clients.join(', ') : r.from.join(', ')}`);
  return new HostError(`${fw.host}: ${which} is active; dpgc does not add its own nftables rules beside another firewall manager's (each would drop what the other allows)`, {
    hint:
      which === 'ufw'
        ? `Either turn ufw off (\`ufw disable\`) and run the sprint again, so dpgc's table is the firewall; or keep ufw, open exactly these ports in it, and waive s5.firewall.enforced in ${inv.file} (readiness.waivers): ${ports.join('; ')}.`
        : `Either stop firewalld (\`systemctl disable --now firewalld\`) and run the sprint again, so dpgc's table is the firewall; or keep firewalld, open exactly these ports in it, and waive s5.firewall.enforced in ${inv.file} (readiness.waivers): ${ports.join('; ')}.`,
  });
}

/** On systemd hosts the table is loaded again at boot, after Debian's nftables.service (whose file flushes the ruleset). */
async function ensureBootUnit(node: Node, fw: Firewall): Promise<boolean> {
  const w = await node.host.writeFile(`${node.paths.systemdDir}/${FIREWALL_UNIT}`, renderFirewallUnit(fw, node.paths.firewallRules), { mode: 0o644 });
  if (w.changed) await node.host.exec(['systemctl', 'daemon-reload']);
  const enabled = await node.host.exec(['systemctl', 'is-enabled', FIREWALL_UNIT], { mutates: false, allowFailure: true });
  if (enabled.stdout.trim() === 'enabled') return w.changed;
  await node.host.exec(['systemctl', 'enable', FIREWALL_UNIT]);
  return true;
}

/**
 * dpgc's table on the host exactly as rendered: the file checked by `nft -c`
 * and installed, then loaded with `nft -f` (one transaction that replaces the
 * table) when the live table differs. Refused before anything changes when
 * ufw or firewalld manages the host's firewall, and when the rules would lock
 * dpgc's own SSH session out. nftables itself is installed by the step before,
 * one host at a time where hosts share a dpkg database (the lab).
 */
export async function ensureFirewall(inv: Inv, node: Node): Promise<{ changed: boolean; note?: string }> {
  const fw = firewallFor(inv, node.spec);
  // The lab's table filters only the lab's own addresses, which competes with no firewall of the machine's.
  if (!inv.lab) {
    const other = await otherFirewall(node.host);
    if (other) throw otherFirewallError(inv, fw, other);
  }
  refuseLockout(inv, fw, await sshSession(node.host));
  const s = await firewallState(inv, node);
  const file = await installValidated(node.host, node.paths.firewallRules, s.text, { mode: 0o644 }, (candidate) =>
    runValidator(node.host, 'firewall (nftables)', ['nft', '-c', '-f', candidate]),
  );
  const boot = node.spec.services === 'systemd' ? await ensureBootUnit(node, fw) : false;
  if (s.live !== undefined && !s.differences.length) return { changed: file.changed || boot };
  await node.host.exec(['nft', '-f', node.paths.firewallRules]);
  const what = s.live === undefined ? 'was missing' : `differed: ${s.differences.slice(0, 3).join('; ')}${s.differences.length > 3 ? `; … ${s.differences.length - 3} more` : ''}`;
  return { changed: true, note: `table inet ${fw.table} ${what}` };
}

/** Deletes dpgc's table from the host (`dpgc lab down`); false when there is none, or no nftables at all. */
export async function removeFirewall(host: Host, table: string): Promise<boolean> {
  const nft = await host.exec(['sh', '-c', 'command -v nft'], { mutates: false, allowFailure: true });
  if (nft.exitCode !== 0 || (await liveTable(host, table)) === undefined) return false;
  await host.exec(['nft', 'delete', 'table', 'inet', table]);
  return true;
}

/**
 * A listener on the host's own address, on a port the kernel picks (free,
 * and in the ephemeral range, which no rule opens), running in the
 * background until `stop()`: the port a criterion shows the firewall refuses.
 * perl, since every Debian host has it (perl-base is essential); it ends by
 * itself after a minute whatever becomes of dpgc.
 */
const LISTENER = 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => $ARGV[0], LocalPort => 0, Listen => 5, ReuseAddr => 1) or exit 3; alarm 60; sleep 1 while 1;';

export async function openListener(host: Host, address: string): Promise<{ port: number; stop(): Promise<void> }> {
  // Why sh: to start it in the background and print its pid; script and address are "$1" and "$2", never spliced in.
  const started = await host.exec(['sh', '-c', 'perl -e "$1" "$2" </dev/null >/dev/null 2>&1 & echo $!', 'sh', LISTENER, address]);
  const pid = Number(started.stdout.trim());
  const stop = async () => {
    await host.exec(['kill', String(pid)], { allowFailure: true });
  };
  try {
    const port = await waitUntil(
      async () => {
        const ss = await host.exec(['ss', '-ltnpH', 'src', address], { mutates: false });
        const line = ss.stdout.split('\n').find((l) => l.includes(`pid=${pid},`));
        const m = line ? new RegExp(`${address.replace(/\./g, '\\.')}:(\\d+)\\s`).exec(line) : null;
        return m ? Number(m[1]) : undefined;
      },
      { timeoutMs: 5000, everyMs: 100 },
      `a listener on ${address} (perl, pid ${pid}) on ${host.name} to show up in \`ss -ltnp\``,
    );
    return { port, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
