import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { alive } from './proc.js';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

export interface SshdOptions {
  /** A loopback address such as 127.0.0.21. */
  address: string;
  /** Default: a free port picked by the kernel. */
  port?: number;
  /** More sshd_config lines, e.g. `MaxSessions 2`. */
  extraConfig?: string[];
}

/**
 * A real OpenSSH sshd on loopback, run as a child process from a temp dir:
 * its own host key, an authorized client key, and nothing outside the temp
 * dir touched (not /root/.ssh, not /etc/ssh).
 */
export interface Sshd {
  address: string;
  port: number;
  dir: string;
  /** Client private key whose public half is authorized for root. */
  keyPath: string;
  /** Client private key that sshd does not accept. */
  unauthorizedKeyPath: string;
  /** A known_hosts path in the temp dir, absent until something writes it. */
  knownHostsPath: string;
  /** Host private key (its `.pub` sits next to it). */
  hostKeyPath: string;
  /** `SHA256:…` of the current host key, as ssh-keygen prints it. */
  hostKeyFingerprint: string;
  /** The known_hosts line for the current host key (`[address]:port type base64`). */
  knownHostsLine: string;
  /** sshd's own log (-E), useful when a test fails. */
  logPath: string;
  /** Kill every open session (as if the network dropped), keeping sshd listening. */
  dropConnections(): Promise<void>;
  /** Replace the host key and restart sshd on the same port. */
  regenerateHostKey(): Promise<void>;
  /** Kill sshd and every session it forked, and delete the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export async function startSshd(o: SshdOptions): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), 'dpgc-sshd-'));
  let child: ChildProcess | undefined;
  const onExit = () => child?.kill('SIGKILL');
  process.once('exit', onExit);
  try {
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const port = o.port ?? (await freePort(o.address));
    const hostKeyPath = join(dir, 'ssh_host_ed25519_key');
    const keyPath = join(dir, 'id_ed25519');
    const unauthorizedKeyPath = join(dir, 'id_other');
    await Promise.all([keygen(hostKeyPath, 'dpgc-test-host'), keygen(keyPath, 'dpgc-test-client'), keygen(unauthorizedKeyPath, 'dpgc-test-other')]);
    await writeFile(join(dir, 'authorized_keys'), await readFile(`${keyPath}.pub`), { mode: 0o600 });
    const cfg = join(dir, 'sshd_config');
    const logPath = join(dir, 'sshd.log');
    await writeFile(
      cfg,
      [
        `ListenAddress ${o.address}:${port}`,
        `HostKey ${hostKeyPath}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'LogLevel VERBOSE',
        // Bash sources ~/.bashrc for commands run by sshd unless SHLVL says it
        // is nested; root's bashrc on a dev machine (pyenv…) costs ~0.5 s per command.
        'SetEnv SHLVL=1',
        ...(o.extraConfig ?? []),
        '',
      ].join('\n'),
    );

    const start = async () => {
      const c = spawn(SSHD, ['-D', '-f', cfg, '-E', logPath], { stdio: 'ignore' });
      child = c;
      await waitForBanner(o.address, port, c, logPath);
    };

    const stopDaemon = async () => {
      const c = child;
      child = undefined;
      if (!c?.pid || c.exitCode !== null || c.signalCode !== null) return;
      // Sessions are forked children that outlive the listener: kill them too.
      const pids = [c.pid, ...(await descendants(c.pid))];
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      for (const pid of pids.reverse()) kill(pid);
      await exited;
    };

    const s: Sshd = {
      address: o.address,
      port,
      dir,
      keyPath,
      unauthorizedKeyPath,
      knownHostsPath: join(dir, 'known_hosts'),
      hostKeyPath,
      hostKeyFingerprint: '',
      knownHostsLine: '',
      logPath,
      async dropConnections() {
        if (!child?.pid) return;
        // The connection's own sshd dies first, and is gone before the commands
        // it ran are killed: a command killed first reaches the client as an
        // exit by signal before the connection drops, which is another event.
        const all = await descendants(child.pid);
        const sessions = await children(child.pid);
        for (const pid of sessions) kill(pid);
        const deadline = Date.now() + 5000;
        while (sessions.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
        for (const pid of all.reverse()) kill(pid);
      },
      async regenerateHostKey() {
        await stopDaemon();
        await rm(hostKeyPath, { force: true });
        await rm(`${hostKeyPath}.pub`, { force: true });
        await keygen(hostKeyPath, 'dpgc-test-host');
        await describeHostKey(s);
        await start();
      },
      async stop() {
        process.off('exit', onExit);
        await stopDaemon();
        await rm(dir, { recursive: true, force: true });
      },
    };
    await describeHostKey(s);
    await start();
    return s;
  } catch (e) {
    child?.kill('SIGKILL');
    process.off('exit', onExit);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

async function keygen(path: string, comment: string): Promise<void> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

async function describeHostKey(s: Sshd): Promise<void> {
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${s.hostKeyPath}.pub`]);
  const fp = stdout.split(' ')[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -l output: ${stdout}`);
  const [type, b64] = (await readFile(`${s.hostKeyPath}.pub`, 'utf8')).trim().split(' ');
  s.hostKeyFingerprint = fp;
  s.knownHostsLine = `[${s.address}]:${s.port} ${type} ${b64}`;
}

function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, address, () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Until sshd sends its `SSH-2.0-` banner; fails fast if sshd exits. */
async function waitForBanner(address: string, port: number, c: ChildProcess, logPath: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (c.exitCode !== null || c.signalCode !== null) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      throw new Error(`sshd exited (${c.exitCode ?? c.signalCode}) before answering on ${address}:${port}\n${log}`);
    }
    if (await answers(address, port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  c.kill('SIGKILL');
  throw new Error(`sshd did not answer on ${address}:${port} within 10s`);
}

function answers(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: address, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('data', (d) => done(d.toString('latin1').startsWith('SSH-')));
  });
}

async function children(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(' ').filter(Boolean).map(Number);
}

async function descendants(root: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    // Field 4 (ppid) follows the `(comm)` field, which may itself contain spaces.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parent.set(Number(e), ppid);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [p, pp] of parent) {
      if (pp !== pid) continue;
      out.push(p);
      walk(p);
    }
  };
  walk(root);
  return out;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
