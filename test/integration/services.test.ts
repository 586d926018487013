import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalHost } from '../../src/hosts/local.js';
import { serviceManager, type ServiceManager, type ServiceSpec } from '../../src/hosts/services.js';
import { silentLogger } from '../../src/output/log.js';

// Supervised processes for real: a tiny HTTP server run as `postgres`.
describe('supervised services', () => {
  let dir: string;
  let svc: ServiceManager;
  let spec: ServiceSpec;
  const host = new LocalHost({ name: 't1', address: '127.0.60.1', dryRun: false, logger: silentLogger });

  beforeAll(async () => {
    dir = await mkdtemp('/tmp/dpgc-svc-');
    svc = serviceManager(host, { services: 'supervised' }, { runDir: join(dir, 'run'), logDir: join(dir, 'log') });
    spec = { name: 'web', user: 'postgres', argv: ['python3', '-m', 'http.server', '--bind', '127.0.60.1', '18999'], listen: { address: '127.0.60.1', port: 18999 } };
  });
  afterAll(async () => {
    await svc.stop(spec).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  it('starts once, confirms it listens, and a second start changes nothing', async () => {
    const first = await svc.start(spec);
    expect(first.changed).toBe(true);
    const again = await svc.start(spec);
    expect(again).toEqual({ changed: false, pid: first.pid });
    const uid = (await readFile(`/proc/${first.pid}/status`, 'utf8')).match(/^Uid:\s+(\d+)/m)?.[1];
    expect(uid).not.toBe('0');
  });

  it('stops by pid file, and a second stop changes nothing', async () => {
    expect(await svc.stop(spec)).toEqual({ changed: true });
    expect(await svc.stop(spec)).toEqual({ changed: false });
    expect(await svc.status(spec)).toEqual({ running: false, reason: 'no pid file' });
  });

  it('never signals a process that merely reuses a stale pid', async () => {
    // Our own test process stands in for an unrelated process that got the pid.
    await writeFile(join(dir, 'run', 'web.pid'), `${process.pid} 1\n`);
    const st = await svc.status(spec);
    expect(st).toEqual({ running: false, reason: `pid ${process.pid} belongs to another process now (stale pid file)` });
    expect(await svc.stop(spec)).toEqual({ changed: false });
  });

  it('reports a daemon that dies right after start, with its log', async () => {
    const bad: ServiceSpec = { ...spec, name: 'bad', argv: ['sh', '-c', 'echo "cannot bind: permission denied" >&2; exit 1'] };
    await expect(svc.start(bad)).rejects.toThrow(/t1: bad exited right after start[\s\S]*cannot bind: permission denied/);
  });

  it("gives the daemon an environment built from scratch: none of dpgc's, and the env file as data, never run", async () => {
    const injected = join(dir, 'injected');
    const envFile = join(dir, 'web-env.env');
    await writeFile(
      envFile,
      ['# comment', `RAW=$(touch ${injected}) and \`touch ${injected}\``, `QUOTED='it'\\''s $(touch ${injected})'`, 'EMPTY=', ''].join('\n'),
      { mode: 0o600 },
    );
    const envSpec: ServiceSpec = { ...spec, name: 'web-env', argv: ['python3', '-m', 'http.server', '--bind', '127.0.60.1', '18998'], listen: { address: '127.0.60.1', port: 18998 }, envFile, env: { LC_ALL: 'C.UTF-8' } };
    const before = process.env['DPGC_SECRET_SUPERUSER'];
    process.env['DPGC_SECRET_SUPERUSER'] = 'operator-secret-do-not-leak';
    try {
      const { pid } = await svc.start(envSpec);
      const environ = Object.fromEntries(
        (await readFile(`/proc/${pid}/environ`, 'utf8'))
          .split('\0')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      );
      expect(Object.keys(environ).sort()).toEqual(['EMPTY', 'HOME', 'LC_ALL', 'PATH', 'QUOTED', 'RAW']);
      expect(environ).toMatchObject({ RAW: `$(touch ${injected}) and \`touch ${injected}\``, QUOTED: `it's $(touch ${injected})`, EMPTY: '', HOME: '/' });
      expect(existsSync(injected)).toBe(false);
      // Nothing of the env file in any argv (ps shows argv to everyone).
      expect((await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ')).not.toContain('touch');
    } finally {
      if (before === undefined) delete process.env['DPGC_SECRET_SUPERUSER'];
      else process.env['DPGC_SECRET_SUPERUSER'] = before;
      await svc.stop(envSpec);
    }
  });

  it('refuses an env file line that is not KEY=VALUE, and starts nothing', async () => {
    const envFile = join(dir, 'bad.env');
    await writeFile(envFile, 'export X=1\n', { mode: 0o600 });
    const bad: ServiceSpec = { ...spec, name: 'web-bad-env', envFile, argv: ['python3', '-m', 'http.server', '--bind', '127.0.60.1', '18995'], listen: { address: '127.0.60.1', port: 18995 } };
    await expect(svc.start(bad)).rejects.toThrow(/bad\.env:1: not a KEY=VALUE line/);
    expect(existsSync(join(dir, 'run', 'web-bad-env.pid'))).toBe(false);
  });

  it('concurrent starts start one daemon, and every caller gets its pid', async () => {
    const race: ServiceSpec = { ...spec, name: 'web-race', argv: ['python3', '-m', 'http.server', '--bind', '127.0.60.1', '18997'], listen: { address: '127.0.60.1', port: 18997 } };
    try {
      const all = await Promise.all([1, 2, 3, 4, 5].map(() => svc.start(race)));
      expect(all.filter((r) => r.changed)).toHaveLength(1);
      expect(new Set(all.map((r) => r.pid)).size).toBe(1);
      const ps = await execa('pgrep', ['-f', '--', 'http.server --bind 127.0.60.1 18997'], { reject: false });
      expect(String(ps.stdout).trim().split('\n')).toEqual([String(all[0]!.pid)]);
    } finally {
      await svc.stop(race);
    }
  });

  it('refuses to start when a process it does not track owns the port, and writes no pid file', async () => {
    const squatter = execa('python3', ['-m', 'http.server', '--bind', '127.0.60.1', '18996'], { reject: false, stdio: 'ignore' });
    try {
      for (let i = 0; i < 50; i++) {
        if ((await execa('timeout', ['1', 'bash', '-c', 'exec 3<>/dev/tcp/127.0.60.1/18996'], { reject: false })).exitCode === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const taken: ServiceSpec = { ...spec, name: 'web-taken', argv: ['python3', '-m', 'http.server', '--bind', '127.0.60.1', '18996'], listen: { address: '127.0.60.1', port: 18996 } };
      await expect(svc.start(taken)).rejects.toThrow(/127\.0\.60\.1:18996 is already taken by a process dpgc does not track/);
      expect(existsSync(join(dir, 'run', 'web-taken.pid'))).toBe(false);
    } finally {
      squatter.kill();
      await squatter;
    }
  });
});
