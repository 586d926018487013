import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { Client, ClientChannel, ConnectConfig, PublicKeyAuthMethod, ServerHostKeyAlgorithm } from 'ssh2';
import type { SshSettings } from '../config/schema.js';
import { HostError } from '../errors.js';
import { BaseHost, type BaseHostOptions, type RawResult, type RawRun } from './base.js';
import { expandHome, HostKeyTrust } from './known-hosts.js';
import { shellJoin, shellQuote } from './quote.js';

export interface SshHostOptions extends BaseHostOptions {
  ssh: SshSettings;
  acceptNewHostKeys: boolean;
}

/**
 * sshd's default MaxSessions is 10 channels per connection; stay under it.
 * sshd frees a session slot a moment after it closes the channel, so a
 * refused channel is retried, and the limit shrinks for hosts set lower.
 */
const MAX_CHANNELS = 8;
const CHANNEL_ATTEMPTS = 10;
const KEEPALIVE_MS = 10_000;
/** `timeout -k`: seconds between SIGTERM and SIGKILL for a command that overran. */
const KILL_AFTER_S = 2;

/** No channel was opened, so the command never ran and may be retried. */
class ChannelRefused extends Error {
  /** The connection died (rather than sshd saying no): retry on a new one. */
  constructor(
    message: string,
    readonly lost: boolean,
  ) {
    super(message);
  }
}

interface Key {
  path: string;
  data: Buffer;
}

/**
 * Runs commands over one SSH connection per host (ssh2, one exec channel per
 * command). Key auth only; host keys are checked against pinned fingerprints
 * and known_hosts the way OpenSSH does, and a changed key is never accepted.
 */
export class SshHost extends BaseHost {
  readonly transport = 'ssh';
  private readonly where: string;
  private client: Promise<Client> | undefined;
  /** The client behind `client` once it is ready; cleared when it closes. */
  private live: Client | undefined;
  /** Why the last connection ended (keepalive timeout…), for the next error. */
  private lostBecause = '';
  private closed = false;
  private active = 0;
  private maxChannels = MAX_CHANNELS;
  private readonly waiting: (() => void)[] = [];

  private constructor(
    o: BaseHostOptions,
    private readonly ssh: SshSettings,
    private readonly keys: Key[],
    private readonly trust: HostKeyTrust,
  ) {
    super(o);
    this.where = `${o.address}:${ssh.port}`;
  }

  static async connect(o: SshHostOptions): Promise<SshHost> {
    const keys = await loadKeys(o.name, o.ssh.key);
    const trust = await HostKeyTrust.load(o, o.acceptNewHostKeys);
    // ssh.sudo is the setting; pool.ts passes only the common options.
    const host = new SshHost({ ...o, sudo: o.sudo ?? o.ssh.sudo ?? false }, o.ssh, keys, trust);
    await host.connection();
    return host;
  }

  /** The open connection; reopened once if it was lost (a restarted host, a drill). */
  private connection(): Promise<Client> {
    if (this.closed) return Promise.reject(new HostError(`${this.name}: SSH connection to ${this.where} is closed`));
    this.client ??= this.open().catch((e: unknown) => {
      this.client = undefined;
      throw e;
    });
    return this.client;
  }

  private open(): Promise<Client> {
    const { user, port, connect_timeout_s } = this.ssh;
    const c = new ssh2.Client();
    const trust = this.trust;
    // One 'close' listener per running command (at most MAX_CHANNELS) plus ours.
    c.setMaxListeners(MAX_CHANNELS + 5);
    let refusal: HostError | undefined;
    return new Promise((resolve, reject) => {
      let ready = false;
      c.once('ready', () => {
        ready = true;
        this.live = c;
        this.lostBecause = '';
        this.logger.debug(`${this.name}: connected to ${user}@${this.where}`);
        resolve(c);
      });
      c.on('error', (err: Error & { level?: string; code?: string }) => {
        if (ready) {
          this.lostBecause = ` (${err.message})`;
          this.logger.debug(`${this.name}: SSH connection to ${this.where}: ${err.message}`);
        }
        else reject(refusal ?? this.connectError(err));
      });
      c.on('close', () => {
        if (!ready) reject(refusal ?? new HostError(`${this.name}: ${this.where} closed the SSH connection during the handshake`));
        else if (this.live === c) {
          this.live = undefined;
          this.client = undefined;
        }
      });
      const cfg: ConnectConfig = {
        host: this.address,
        port,
        username: user,
        readyTimeout: connect_timeout_s * 1000,
        keepaliveInterval: KEEPALIVE_MS,
        keepaliveCountMax: 3,
        algorithms: { serverHostKey: trust.preferredAlgorithms() },
        // Public keys only, in order: never a password, never keyboard-interactive.
        authHandler: this.keys.map((k): PublicKeyAuthMethod => ({ type: 'publickey', username: user, key: k.data })),
        hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
          trust.check(key).then(
            (r) => {
              if (r) refusal = r;
              verify(r === undefined);
            },
            (e: unknown) => {
              refusal = new HostError(`${this.name}: could not check the host key of ${this.where}: ${(e as Error).message}`);
              verify(false);
            },
          );
        },
      };
      c.connect(cfg);
    });
  }

  private connectError(err: Error & { level?: string; code?: string }): HostError {
    return connectError(err, { name: this.name, address: this.address, ssh: this.ssh, keyPaths: this.keys.map((k) => k.path) });
  }

  protected async run(r: RawRun): Promise<RawResult> {
    const command = remoteCommand(r);
    for (let attempt = 1; ; attempt++) {
      const client = await this.connection();
      await this.acquire();
      try {
        return await this.execChannel(client, command, r);
      } catch (e) {
        if (!(e instanceof ChannelRefused)) throw e;
        if (attempt >= CHANNEL_ATTEMPTS) {
          throw new HostError(
            e.lost
              ? `${this.name}: SSH connection to ${this.where} was lost${this.lostBecause} before \`${r.argv[0] ?? ''}\` could start (${attempt} attempts)`
              : `${this.name}: sshd on ${this.where} refused to open a session ${attempt} times (${e.message}) — is MaxSessions very low?`,
          );
        }
        if (!e.lost) this.maxChannels = Math.max(1, Math.min(this.maxChannels, this.active - 1));
        this.logger.debug(`${this.name}: no session on ${this.where} (${e.message}); retrying with at most ${this.maxChannels} at once`);
      } finally {
        this.release();
      }
      await new Promise((resolve) => setTimeout(resolve, 25 * attempt));
    }
  }

  private execChannel(client: Client, command: string, r: RawRun): Promise<RawResult> {
    return new Promise((resolve, reject) => {
      client.exec(command, (err: Error | undefined, ch: ClientChannel) => {
        if (err) {
          reject(new ChannelRefused(err.message, client !== this.live));
          return;
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let exitCode: number | null = null;
        let expired = false;
        let grace: NodeJS.Timeout | undefined;
        const finish = () => {
          clearTimeout(timer);
          clearTimeout(grace);
          client.off('close', onLost);
          // A command that still succeeded in the moment between our timer
          // and the remote one counts as a success.
          const timedOut = expired && exitCode !== 0;
          resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), exitCode, timedOut });
        };
        const onLost = () => {
          clearTimeout(timer);
          clearTimeout(grace);
          if (expired) return finish();
          reject(new HostError(`${this.name}: SSH connection to ${this.where} was lost${this.lostBecause} while running \`${r.argv[0] ?? ''}\``));
        };
        // The remote `timeout` kills the command; this timer only gives up on
        // a host that no longer answers at all.
        const timer = setTimeout(() => {
          expired = true;
          grace = setTimeout(() => {
            ch.close();
            finish();
          }, (KILL_AFTER_S + 3) * 1000);
        }, r.timeoutMs);
        client.once('close', onLost);
        ch.on('data', (b: Buffer) => out.push(b));
        ch.stderr.on('data', (b: Buffer) => errOut.push(b));
        ch.on('exit', (code: number | null) => {
          exitCode = typeof code === 'number' ? code : null;
        });
        ch.once('close', finish);
        // A command that exits without reading its stdin must not crash us.
        ch.on('error', () => {});
        if (r.input === undefined) ch.end();
        else ch.end(r.input);
      });
    });
  }

  private async acquire(): Promise<void> {
    while (this.active >= this.maxChannels) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const c = await this.client?.catch(() => undefined);
    this.client = undefined;
    if (!c) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      c.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      c.end();
    });
  }
}

/**
 * `cd <dir> && [sudo -n --] [env K=V…] timeout -k 2 <s> argv…`. env goes
 * inside sudo, which would reset it. The deadline is enforced on the host by
 * coreutils `timeout`, which kills the command's whole process group: closing
 * an SSH channel does not stop a command, and OpenSSH ignores `signal`
 * requests on root sessions (privilege separation is off after a root login).
 */
function remoteCommand(r: RawRun): string {
  if (r.argv.length === 0) throw new Error('empty argv');
  const env = Object.entries(r.env ?? {});
  const bad = env.find(([k]) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k));
  if (bad) throw new Error(`invalid environment variable name ${JSON.stringify(bad[0])}`);
  const sudo = r.argv[0] === 'sudo' && r.argv[1] === '-n' && r.argv[2] === '--' ? 3 : 0;
  const argv = [
    ...r.argv.slice(0, sudo),
    ...(env.length ? ['env', ...env.map(([k, v]) => `${k}=${v}`)] : []),
    'timeout',
    '-k',
    String(KILL_AFTER_S),
    String(Math.max(1, r.timeoutMs) / 1000),
    ...r.argv.slice(sudo),
  ];
  return (r.cwd === undefined ? '' : `cd ${shellQuote(r.cwd)} && `) + shellJoin(argv);
}

/** Why a connection failed before the session was ready, in operator terms (shared by SshHost and offeredHostKey). */
function connectError(err: Error & { level?: string; code?: string }, o: { name: string; address: string; ssh: SshSettings; keyPaths: string[] }): HostError {
  const { user, port, connect_timeout_s } = o.ssh;
  const where = `${o.address}:${port}`;
  const n = o.name;
  switch (err.code) {
    case 'ECONNREFUSED':
      return new HostError(`${n}: ${where} refused the connection — is sshd running?`, { hint: `Check sshd on ${o.address} and ssh.port (${port}).` });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new HostError(`${n}: cannot connect to ${where}: DNS lookup of ${o.address} failed (${err.code}) — check the host's address`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new HostError(`${n}: ${where} is unreachable (${err.code}) — check the address and routing`);
    case 'ECONNRESET':
      return new HostError(`${n}: ${where} reset the connection during the SSH handshake — is it an SSH server?`);
  }
  if (err.level === 'client-timeout') {
    return new HostError(`${n}: no answer from ${where} within ${connect_timeout_s}s`, {
      hint: 'Check the address, that sshd listens there and that no firewall drops the packets; or raise ssh.connect_timeout_s.',
    });
  }
  if (err.level === 'client-authentication') {
    const paths = o.keyPaths;
    const which = paths.length === 1 ? `key ${paths[0]} — is its public key` : `keys ${paths.join(' and ')} — is one of their public keys`;
    return new HostError(`${n}: ${user}@${where} rejected ${which} in ~/.ssh/authorized_keys?`, {
      hint: `Set ssh.user and ssh.key for ${n}, or install the key with ssh-copy-id -i ${paths[0] ?? '<key>'} -p ${port} ${user}@${o.address}.`,
    });
  }
  return new HostError(`${n}: SSH connection to ${user}@${where} failed: ${err.message}`);
}

/**
 * The host key `address:port` offers, read in a handshake that is then
 * abandoned (nothing is authenticated, nothing runs). `dpgc init` shows its
 * fingerprint and asks before anything trusts it, as ssh does; a prompt
 * inside the real handshake would race ssh2's ready timeout.
 */
export function offeredHostKey(o: { name: string; address: string; ssh: SshSettings }, algorithms?: ServerHostKeyAlgorithm[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    let key: Buffer | undefined;
    const done = () => {
      c.end();
      if (key) resolve(key);
    };
    c.on('error', (err: Error & { level?: string; code?: string }) => {
      if (key) return done();
      reject(connectError(err, { ...o, keyPaths: [] }));
    });
    c.on('close', () => (key ? resolve(key) : reject(new HostError(`${o.name}: ${o.address}:${o.ssh.port} closed the SSH connection during the handshake`))));
    c.connect({
      host: o.address,
      port: o.ssh.port,
      username: o.ssh.user,
      readyTimeout: o.ssh.connect_timeout_s * 1000,
      ...(algorithms ? { algorithms: { serverHostKey: algorithms } } : {}),
      hostVerifier: (k: Buffer) => {
        key = k;
        return false;
      },
    });
  });
}

async function loadKeys(name: string, key: string | undefined): Promise<Key[]> {
  const candidates = key === undefined ? ['~/.ssh/id_ed25519', '~/.ssh/id_rsa'] : [key];
  const keys: Key[] = [];
  for (const shown of candidates) {
    const path = expandHome(shown);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && key === undefined) continue;
      if (code === 'ENOENT') throw new HostError(`${name}: SSH key ${path} does not exist`, { hint: `Fix ssh.key for ${name}, or create it: ssh-keygen -t ed25519 -f ${path}` });
      throw new HostError(`${name}: cannot read SSH key ${path}: ${(e as Error).message}`);
    }
    const parsed = ssh2.utils.parseKey(data);
    if (parsed instanceof Error) {
      const locked = /encrypted|passphrase/i.test(parsed.message);
      throw new HostError(
        locked
          ? `${name}: SSH key ${path} is passphrase-protected; dpgc cannot prompt for it — use a key without a passphrase`
          : `${name}: ${path} is not a private key dpgc can read (${parsed.message})`,
      );
    }
    keys.push({ path, data });
  }
  if (!keys.length) {
    throw new HostError(`${name}: no SSH key given and neither ~/.ssh/id_ed25519 nor ~/.ssh/id_rsa exists`, { hint: `Set ssh.key for ${name} (under the host or under defaults).` });
  }
  return keys;
}
