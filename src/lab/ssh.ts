import { existsSync } from 'node:fs';
import type { HostSpec, Inventory } from '../config/schema.js';
import { hostPaths } from '../config/paths.js';
import { ConfigError, HostError } from '../errors.js';
import { knownHostsId } from '../hosts/known-hosts.js';
import { assertOwnedPath } from '../hosts/owned.js';
import { LocalHost } from '../hosts/local.js';
import { portOpen, serviceManager, type ServiceSpec } from '../hosts/services.js';
import type { Host } from '../hosts/types.js';
import { silentLogger, type Logger } from '../output/log.js';
import { render } from '../templates.js';
import { LAB_HOSTS } from './inventory.js';
import { claimLabDirs } from './lab.js';
import { claimDir } from './marker.js';

/**
 * The lab over SSH: one OpenSSH sshd on every lab address, a generated client
 * key authorized for root, and a known_hosts file pre-filled with the lab's
 * host key, so the SSH transport is exercised exactly as on real hosts (host
 * key verification included) without --accept-new-host-keys.
 *
 * sshd is a supervised service named `sshd` with its pid file in the ctl
 * host's run directory, so `dpgc lab down` stops it (last). `lab init --ssh`
 * and `lab up` call ensureLabSshd; other commands never start it (verify must
 * change nothing), and report a host that does not answer as
 * "… refused the connection — is sshd running?".
 */

/** Off 22, so a system sshd on this machine keeps its port. */
export const LAB_SSH_PORT = 2222;
const SSHD = '/usr/sbin/sshd';

export interface LabSsh {
  port: number;
  key: string;
  knownHosts: string;
}

export function labSshFiles(dir: string) {
  const d = `${dir}/ssh`;
  return {
    dir: d,
    clientKey: `${d}/id_ed25519`,
    hostKey: `${d}/ssh_host_ed25519_key`,
    authorizedKeys: `${d}/authorized_keys`,
    knownHosts: `${d}/known_hosts`,
    config: `${d}/sshd_config`,
    /** sshd's own pid file; the supervisor's is `<ctl runDir>/sshd.pid`. */
    pidFile: `${d}/sshd.pid`,
  };
}
export type LabSshFiles = ReturnType<typeof labSshFiles>;

/** Keys and trust files for a new lab on `subnet` (before its inventory exists). */
export async function prepareLabSsh(dir: string, subnet: string, logger: Logger, owner: { inventory: string; cluster: string }): Promise<LabSsh> {
  const files = labSshFiles(dir);
  await claimDir(files.dir, { ...owner, dpgc: 'ssh' }, 'usage', 0o700);
  await writeKeys(localHost(logger), files, LAB_HOSTS.map((h) => `${subnet}.${h.octet}`), LAB_SSH_PORT);
  return { port: LAB_SSH_PORT, key: files.clientKey, knownHosts: files.knownHosts };
}

export function labUsesSsh(inv: Inventory): boolean {
  return inv.lab && inv.hosts.some((h) => h.transport === 'ssh');
}

export function renderSshdConfig(o: { addresses: string[]; port: number; files: LabSshFiles }): string {
  return render('sshd/sshd_config.eta', {
    addresses: o.addresses,
    port: o.port,
    hostKey: o.files.hostKey,
    pidFile: o.files.pidFile,
    authorizedKeys: o.files.authorizedKeys,
  });
}

/**
 * The lab's sshd running with the current config, listening on every SSH
 * host's address: started when down, restarted when its config or host key
 * changed, untouched (`changed: false`) otherwise. Missing keys (a lab
 * directory removed by `lab down` under a kept inventory) are regenerated.
 */
export async function ensureLabSshd(inv: Inventory, logger: Logger = silentLogger): Promise<{ changed: boolean; pid?: number }> {
  const hosts = inv.hosts.filter((h) => h.transport === 'ssh');
  if (!inv.lab || !hosts.length) return { changed: false };
  const port = onePort(inv, hosts);
  // A lab removed by `lab down` under a kept inventory comes back marked as dpgc's, so the next `lab down` may remove it.
  const files = labSshFiles(await claimLabDirs(inv));
  await claimDir(files.dir, { inventory: inv.file, cluster: inv.cluster, dpgc: 'ssh' }, 'config', 0o700);
  const addresses = hosts.map((h) => h.address);
  const host = localHost(logger);
  const keys = await writeKeys(host, files, addresses, port);
  const config = await host.writeFile(files.config, renderSshdConfig({ addresses, port, files }), { mode: 0o600 });

  const ctl = inv.hosts.find((h) => h.name === LAB_HOSTS[0].name) ?? inv.hosts[0]!;
  const services = serviceManager(host, { services: 'supervised' }, hostPaths(inv, ctl));
  const spec: ServiceSpec = { name: 'sshd', user: 'root', argv: [SSHD, '-D', '-e', '-f', files.config], listen: { address: addresses[0]!, port }, startTimeoutMs: 10_000 };
  const where = `${addresses.join(', ')} port ${port}`;

  const before = await services.status(spec);
  const restart = before.running && (config.changed || keys.hostKeyNew);
  if (before.running && !restart) {
    await confirmListening(host, services.logTail.bind(services), addresses, port);
    return { changed: false, pid: before.pid };
  }
  if (!before.running) {
    const taken = (await Promise.all(addresses.map(async (a) => ((await portOpen(host, a, port)) ? a : undefined)))).filter(Boolean);
    if (taken.length) {
      throw new HostError(`port ${port} on ${taken.join(', ')} is already taken, and not by this lab's sshd (a leftover of an earlier lab on the same subnet?)`, {
        hint: `See what listens there: ss -ltnp 'sport = :${port}'. Stop it, or make the lab on another --subnet.`,
      });
    }
  }
  // sshd's privilege-separation directory; Debian creates it only when its own service starts.
  await host.exec(['mkdir', '-p', '/run/sshd']);
  // A config sshd rejects must never replace a running daemon.
  await host.exec([SSHD, '-t', '-f', files.config], { mutates: false });
  if (restart) await services.restart(spec);
  else await services.start(spec);
  await confirmListening(host, services.logTail.bind(services), addresses, port);
  const now = await services.status(spec);
  logger.info(`${restart ? 'Restarted' : 'Started'} the lab's sshd on ${where}${now.running ? ` (pid ${now.pid})` : ''}.`);
  return { changed: true, ...(now.running ? { pid: now.pid } : {}) };
}

function onePort(inv: Inventory, hosts: HostSpec[]): number {
  const ports = [...new Set(hosts.map((h) => h.ssh.port))];
  if (ports.length !== 1) {
    throw new ConfigError(`${inv.file}: the lab's hosts use SSH ports ${ports.join(', ')}; one lab sshd serves them all on one port`, {
      hint: `Set the same ssh.port (e.g. ${LAB_SSH_PORT}) for every lab host, under defaults.ssh.`,
    });
  }
  return ports[0]!;
}

async function confirmListening(host: Host, logTail: (name: string) => Promise<string>, addresses: string[], port: number): Promise<void> {
  const deaf = (await Promise.all(addresses.map(async (a) => ((await portOpen(host, a, port)) ? undefined : a)))).filter(Boolean);
  if (deaf.length) {
    throw new HostError(`the lab's sshd runs but does not listen on ${deaf.join(', ')} port ${port}\n${await logTail('sshd')}`, {
      hint: 'Another process may hold the port on those addresses: ss -ltnp. Then run `dpgc lab up` again.',
    });
  }
}

/**
 * ed25519 client and host keys (kept when present), the client key
 * authorized for root, and known_hosts naming the host key for every address.
 */
async function writeKeys(host: Host, files: LabSshFiles, addresses: string[], port: number): Promise<{ changed: boolean; hostKeyNew: boolean }> {
  if (!existsSync(SSHD) || !existsSync('/usr/bin/ssh-keygen')) {
    throw new HostError(`the lab over SSH needs OpenSSH's server and ssh-keygen, and ${existsSync(SSHD) ? '/usr/bin/ssh-keygen' : SSHD} is missing`, {
      hint: 'Install them: apt-get install openssh-server (scripts/install-lab-deps.sh does), or make the lab without --ssh.',
    });
  }
  await host.exec(['mkdir', '-p', '-m', '700', files.dir]);
  const clientNew = await keygen(host, files, files.clientKey, 'dpgc-lab-client');
  const hostKeyNew = await keygen(host, files, files.hostKey, 'dpgc-lab-host');
  const [type, b64] = ((await host.readFile(`${files.hostKey}.pub`)) ?? '').trim().split(/\s+/);
  const known = addresses.map((a) => `${knownHostsId(a, port)} ${type} ${b64}\n`).join('');
  const auth = await host.writeFile(files.authorizedKeys, (await host.readFile(`${files.clientKey}.pub`)) ?? '', { mode: 0o600 });
  const kh = await host.writeFile(files.knownHosts, known, { mode: 0o600 });
  return { changed: clientNew || hostKeyNew || auth.changed || kh.changed, hostKeyNew };
}

async function keygen(host: Host, files: LabSshFiles, path: string, comment: string): Promise<boolean> {
  if (existsSync(path) && existsSync(`${path}.pub`)) return false;
  await host.exec(['rm', '-f', assertOwnedPath(path, [files.dir], 'lab SSH key'), `${path}.pub`]);
  await host.exec(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  return true;
}

function localHost(logger: Logger): LocalHost {
  return new LocalHost({ name: LAB_HOSTS[0].name, address: '127.0.0.1', dryRun: false, logger });
}
