import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sshSession } from '../../src/components/firewall.js';
import type { SshSettings } from '../../src/config/schema.js';
import { CommandError, HostError } from '../../src/errors.js';
import { SshHost, type SshHostOptions } from '../../src/hosts/ssh.js';
import { silentLogger } from '../../src/output/log.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

const run = promisify(execFile);

// Outside the lab's 127.0.0.11–13 so a running lab never collides with these.
const ADDRESS = '127.0.0.71';
const ADDRESS_REKEYED = '127.0.0.72';

const opened: SshHost[] = [];

function options(s: Sshd, ssh: Partial<SshSettings> = {}, rest: Partial<SshHostOptions> = {}): SshHostOptions {
  return {
    name: 'db1',
    address: s.address,
    dryRun: false,
    logger: silentLogger,
    acceptNewHostKeys: false,
    ssh: { user: 'root', port: s.port, key: s.keyPath, known_hosts: s.knownHostsPath, connect_timeout_s: 5, ...ssh },
    ...rest,
  };
}

async function connect(o: SshHostOptions): Promise<SshHost> {
  const h = await SshHost.connect(o);
  opened.push(h);
  return h;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<HostError> {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) {
    if (r.v instanceof SshHost) opened.push(r.v);
    throw new Error('expected a rejection');
  }
  expect(r.e).toBeInstanceOf(HostError);
  return r.e as HostError;
}

/** A port on `address` with nothing listening. */
async function closedPort(address: string): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, address, resolve));
  const a = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return typeof a === 'object' && a ? a.port : 0;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((h) => h.close()));
});

describe('SshHost against a real sshd', () => {
  let s: Sshd;
  let host: SshHost;

  beforeAll(async () => {
    s = await startSshd({ address: ADDRESS });
    host = await SshHost.connect(options(s, { host_key_fingerprints: [s.hostKeyFingerprint] }));
  }, 30_000);

  afterAll(async () => {
    await host?.close();
    await s?.stop();
  });

  describe('exec', () => {
    it('returns stdout, stderr and a non-zero exit code with allowFailure', async () => {
      const r = await host.exec(['sh', '-c', 'echo out; echo err >&2; exit 3'], { allowFailure: true });
      expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exitCode: 3 });
    });

    it('throws a CommandError naming host, command, exit code and output', async () => {
      const e = await failure(host.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']));
      expect(e).toBeInstanceOf(CommandError);
      expect(e.message).toBe("db1: `sh -c 'echo out; echo err >&2; exit 3'` exited 3\n    err");
      expect((e as CommandError).exitCodeOfCommand).toBe(3);
    });

    it('passes argv through the remote shell unchanged', async () => {
      const r = await host.exec(['printf', '%s|', 'a b', "it's", '$HOME', '*', '"q"', '']);
      expect(r.stdout).toBe(`a b|it's|$HOME|*|"q"||`);
    });

    it('sets env and cwd', async () => {
      const r = await host.exec(['sh', '-c', 'echo "$FOO:$(pwd)"'], { env: { FOO: "bar 'baz'" }, cwd: s.dir });
      expect(r.stdout).toBe(`bar 'baz':${s.dir}\n`);
    });

    it('runs as another user with env, through setpriv', async () => {
      const r = await host.exec(['sh', '-c', 'echo "$FOO $(id -un) $(pwd)"'], { user: 'postgres', env: { FOO: 'x' }, cwd: '/tmp' });
      expect(r.stdout).toBe('x postgres /tmp\n');
    });

    it('tells the firewall where its session comes from, as the host sees it', async () => {
      expect(await sshSession(host)).toEqual({ source: '127.0.0.1', dest: ADDRESS, port: s.port });
    });

    it('feeds input to stdin, and gives EOF when there is none', async () => {
      expect((await host.exec(['cat'], { input: 'hello\nworld' })).stdout).toBe('hello\nworld');
      expect((await host.exec(['cat'])).stdout).toBe('');
    });

    it('kills a command that outlives its timeout, and the connection stays usable', async () => {
      const started = Date.now();
      const e = await failure(host.exec(['sleep', '5.4321'], { timeoutMs: 500 }));
      expect(Date.now() - started).toBeLessThan(3000);
      expect(e).toBeInstanceOf(CommandError);
      expect(e.message).toBe('db1: `sleep 5.4321` timed out');
      expect((e as CommandError).timedOut).toBe(true);
      // The signal reaches the remote process, not just our channel.
      const left = await host.exec(['pgrep', '-f', '^sleep 5\\.4321$'], { allowFailure: true, mutates: false });
      expect(left.exitCode).toBe(1);
    });

    it('runs many commands at once over its one connection', async () => {
      const rs = await Promise.all(Array.from({ length: 25 }, (_, i) => host.exec(['echo', String(i)])));
      expect(rs.map((r) => r.stdout)).toEqual(Array.from({ length: 25 }, (_, i) => `${i}\n`));
      const sessions = await host.exec(['sh', '-c', `pgrep -P "$(cat ${s.dir}/sshd.pid)" | wc -l`]);
      expect(sessions.stdout.trim()).toBe('1');
    });
  });

  describe('a dropped connection', () => {
    it('fails the running command clearly, and the next command reconnects', async () => {
      const h = await connect(options(s, { host_key_fingerprints: [s.hostKeyFingerprint] }));
      const running = failure(h.exec(['sleep', '3']));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await s.dropConnections();
      // The reason in brackets is whatever the socket reported, if anything.
      const where = `${ADDRESS}:${s.port}`.replace(/\./g, '\\.');
      expect((await running).message).toMatch(new RegExp(`^db1: SSH connection to ${where} was lost( \\(.+\\))? while running \`sleep\`$`));
      expect((await h.exec(['echo', 'back'])).stdout).toBe('back\n');
    });
  });

  describe('files', () => {
    it('round-trips writeFile and readFile with the mode, and skips an unchanged write', async () => {
      const path = join(s.dir, 'files', 'sub', 'secret.conf');
      expect(await host.readFile(path)).toBeUndefined();
      expect(await host.writeFile(path, 'password=s3cret\n', { mode: 0o600 })).toEqual({ path, changed: true });
      expect(await host.readFile(path)).toBe('password=s3cret\n');
      expect((await host.exec(['stat', '-c', '%a %U %G', path])).stdout).toBe('600 root root\n');
      expect((await host.exec(['stat', '-c', '%a', join(s.dir, 'files', 'sub')])).stdout).toBe('755\n');
      expect(await host.writeFile(path, 'password=s3cret\n', { mode: 0o600 })).toEqual({ path, changed: false });
      expect(await host.writeFile(path, 'password=s3cret\n', { mode: 0o640 })).toEqual({ path, changed: true });
      expect((await host.exec(['stat', '-c', '%a', path])).stdout).toBe('640\n');
    });
  });

  describe('dry-run', () => {
    it('skips mutating commands and writes, and still runs read-only ones', async () => {
      const dry = await connect(options(s, { host_key_fingerprints: [s.hostKeyFingerprint] }, { dryRun: true }));
      const marker = join(s.dir, 'dry-run-marker');
      expect(await dry.exec(['touch', marker])).toMatchObject({ skipped: true, exitCode: 0 });
      expect(await dry.writeFile(marker, 'x', { mode: 0o644 })).toEqual({ path: marker, changed: true });
      expect(existsSync(marker)).toBe(false);
      expect((await dry.exec(['echo', 'hi'], { mutates: false })).stdout).toBe('hi\n');
    });
  });

  describe('host keys', () => {
    it('refuses an unknown host key, naming host, port, fingerprint and how to trust it', async () => {
      const e = await failure(SshHost.connect(options(s)));
      expect(e.message).toBe(
        `db1: unknown SSH host key for ${ADDRESS}:${s.port}: ssh-ed25519 ${s.hostKeyFingerprint} (not in ${s.knownHostsPath}, no pinned fingerprint); ` +
          `if that is the host's key, pass --accept-new-host-keys, or add \`host_key_fingerprints: [${s.hostKeyFingerprint}]\` under the host's ssh settings`,
      );
      expect(existsSync(s.knownHostsPath)).toBe(false);
    });

    it('accepts a pinned fingerprint', async () => {
      const h = await connect(options(s, { host_key_fingerprints: ['SHA256:' + 'A'.repeat(43), s.hostKeyFingerprint] }));
      expect((await h.exec(['true'])).exitCode).toBe(0);
    });

    it('with acceptNewHostKeys, accepts an unknown key and records it in known_hosts', async () => {
      const known = join(s.dir, 'accept', 'known_hosts');
      const first = await connect(options(s, { known_hosts: known }, { acceptNewHostKeys: true }));
      expect(await readFile(known, 'utf8')).toBe(`${s.knownHostsLine}\n`);
      // A reconnect finds the key known and does not record it twice.
      await s.dropConnections();
      expect((await first.exec(['true'])).exitCode).toBe(0);
      expect(await readFile(known, 'utf8')).toBe(`${s.knownHostsLine}\n`);
      const again = await connect(options(s, { known_hosts: known }));
      expect((await again.exec(['true'])).exitCode).toBe(0);
    });

    it('accepts a hashed known_hosts entry', async () => {
      const known = join(s.dir, 'known_hosts.hashed');
      await writeFile(known, `# comment\n127.0.0.99 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG7ZZvdVYrfnB3n6q2bZ8Ev9wqQfSM6o3pGc7w1hJ0aN\n${s.knownHostsLine}\n`);
      await run('ssh-keygen', ['-q', '-H', '-f', known]);
      const text = await readFile(known, 'utf8');
      expect(text).not.toContain(ADDRESS);
      expect(text).toContain('|1|');
      const h = await connect(options(s, { known_hosts: known }));
      expect((await h.exec(['true'])).exitCode).toBe(0);
    });

    it('uses ~/.ssh/id_ed25519 and ~/.ssh/known_hosts when none are given', async () => {
      const home = join(s.dir, 'home');
      await mkdir(join(home, '.ssh'), { recursive: true });
      await copyFile(s.keyPath, join(home, '.ssh', 'id_ed25519'));
      await writeFile(join(home, '.ssh', 'known_hosts'), `${s.knownHostsLine}\n`);
      const saved = process.env.HOME;
      process.env.HOME = home;
      try {
        const o = options(s);
        delete o.ssh.key;
        delete o.ssh.known_hosts;
        const h = await connect(o);
        expect((await h.exec(['true'])).exitCode).toBe(0);
      } finally {
        process.env.HOME = saved;
      }
    });
  });

  describe('connection errors', () => {
    it('names user, host, port and the key when the key is rejected', async () => {
      const e = await failure(SshHost.connect(options(s, { key: s.unauthorizedKeyPath, host_key_fingerprints: [s.hostKeyFingerprint] })));
      expect(e.message).toBe(`db1: root@${ADDRESS}:${s.port} rejected key ${s.unauthorizedKeyPath} — is its public key in ~/.ssh/authorized_keys?`);
    });

    it('reports a missing key file', async () => {
      const key = join(s.dir, 'no-such-key');
      const e = await failure(SshHost.connect(options(s, { key })));
      expect(e.message).toBe(`db1: SSH key ${key} does not exist`);
    });

    it('reports a passphrase-protected key', async () => {
      const key = join(s.dir, 'id_locked');
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', key]);
      const e = await failure(SshHost.connect(options(s, { key })));
      expect(e.message).toBe(`db1: SSH key ${key} is passphrase-protected; dpgc cannot prompt for it — use a key without a passphrase`);
    });

    it('reports a refused connection on a closed port', async () => {
      const port = await closedPort(ADDRESS);
      const e = await failure(SshHost.connect(options(s, { port })));
      expect(e.message).toBe(`db1: ${ADDRESS}:${port} refused the connection — is sshd running?`);
    });

    it('reports a name that does not resolve', async () => {
      const e = await failure(SshHost.connect({ ...options(s), address: 'no-such-host.invalid' }));
      expect(e.message).toBe(`db1: cannot connect to no-such-host.invalid:${s.port}: DNS lookup of no-such-host.invalid failed (ENOTFOUND) — check the host's address`);
    });

    it('reports a server that accepts TCP but never speaks SSH', async () => {
      const sockets: Socket[] = [];
      const silent: Server = createServer((c) => sockets.push(c));
      await new Promise<void>((resolve) => silent.listen(0, ADDRESS, resolve));
      try {
        const a = silent.address();
        const port = typeof a === 'object' && a ? a.port : 0;
        const started = Date.now();
        const e = await failure(SshHost.connect(options(s, { port, connect_timeout_s: 0.5 })));
        expect(e.message).toBe(`db1: no answer from ${ADDRESS}:${port} within 0.5s`);
        expect(Date.now() - started).toBeLessThan(3000);
      } finally {
        for (const c of sockets) c.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });

  it('close() is idempotent and later commands fail clearly', async () => {
    const h = await SshHost.connect(options(s, { host_key_fingerprints: [s.hostKeyFingerprint] }));
    await h.close();
    await h.close();
    const e = await failure(h.exec(['true']));
    expect(e.message).toBe(`db1: SSH connection to ${ADDRESS}:${s.port} is closed`);
  });
});

describe('SshHost when the host key changes', () => {
  let s: Sshd;

  beforeAll(async () => {
    s = await startSshd({ address: ADDRESS_REKEYED });
  }, 30_000);

  afterAll(async () => {
    await s?.stop();
  });

  it('refuses the new key even with acceptNewHostKeys, on reconnect and on connect', async () => {
    const oldLine = `${s.knownHostsLine}\n`;
    await writeFile(s.knownHostsPath, oldLine);
    const oldFp = s.hostKeyFingerprint;
    const h = await connect(options(s));
    expect((await h.exec(['true'])).exitCode).toBe(0);

    await s.regenerateHostKey();
    const newFp = s.hostKeyFingerprint;
    expect(newFp).not.toBe(oldFp);
    const expected =
      `db1: the SSH host key of ${ADDRESS_REKEYED}:${s.port} has CHANGED: known_hosts has ${oldFp} (${s.knownHostsPath}:1), ` +
      `the host now offers ssh-ed25519 ${newFp} — possible man-in-the-middle attack, so dpgc refuses to connect, even with --accept-new-host-keys; ` +
      `if the host was reinstalled, remove its line from ${s.knownHostsPath}`;

    // The open connection died with the old sshd; reconnecting checks the key again.
    expect((await failure(h.exec(['true']))).message).toBe(expected);
    expect((await failure(SshHost.connect(options(s, {}, { acceptNewHostKeys: true })))).message).toBe(expected);
    // Nothing was recorded: the old line stays until the operator removes it.
    expect(await readFile(s.knownHostsPath, 'utf8')).toBe(oldLine);
  });

  it('refuses a key that matches none of the pinned fingerprints', async () => {
    const pinned = 'SHA256:' + 'A'.repeat(43);
    const e = await failure(SshHost.connect(options(s, { known_hosts: join(s.dir, 'empty_known_hosts'), host_key_fingerprints: [pinned] }, { acceptNewHostKeys: true })));
    expect(e.message).toBe(
      `db1: the SSH host key of ${ADDRESS_REKEYED}:${s.port} (ssh-ed25519 ${s.hostKeyFingerprint}) matches none of its pinned host_key_fingerprints (${pinned}) — ` +
        'possible man-in-the-middle attack, so dpgc refuses to connect; if the host was reinstalled, update host_key_fingerprints',
    );
  });
});
