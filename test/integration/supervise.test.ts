import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalHost } from '../../src/hosts/local.js';
import { serviceManager, type ServiceManager, type ServiceSpec } from '../../src/hosts/services.js';
import { supervisedChild } from '../../src/hosts/supervise.js';
import { silentLogger } from '../../src/output/log.js';

// The lab's restart loop for real: a tiny HTTP server (127.0.61.1) run as `postgres` with restart: always.
describe('supervised services that restart', () => {
  let dir: string;
  let svc: ServiceManager;
  let spec: ServiceSpec;
  const host = new LocalHost({ name: 't1', address: '127.0.61.1', dryRun: false, logger: silentLogger });
  // A zombie counts as gone: PID 1 on this machine need not reap the orphans it inherits.
  const alive = async (pid: number) => {
    const stat = await host.readFile(`/proc/${pid}/stat`);
    return stat !== undefined && stat.replace(/^.*\) /, '')[0] !== 'Z';
  };
  const childOf = async (pid: number, timeoutMs = 5000): Promise<number | undefined> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await supervisedChild(host, pid);
      if (c !== undefined || Date.now() > deadline) return c;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp('/tmp/dpgc-sup-');
    svc = serviceManager(host, { services: 'supervised' }, { runDir: join(dir, 'run'), logDir: join(dir, 'log') });
    spec = { name: 'web', user: 'postgres', argv: ['python3', '-m', 'http.server', '--bind', '127.0.61.1', '18998'], listen: { address: '127.0.61.1', port: 18998 }, restart: 'always' };
  });
  afterAll(async () => {
    await svc.stop(spec).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  it('starts the daemon under the loop; the pid file tracks the loop, and the daemon is its child', async () => {
    const r = await svc.start(spec);
    expect(r.changed).toBe(true);
    const child = await childOf(r.pid!);
    expect(child).toBeDefined();
    expect(child).not.toBe(r.pid);
    expect(await supervisedChild(host, child!)).toBeUndefined();
  });

  it('a killed daemon is started again within a couple of seconds, and answers again (a crash)', async () => {
    const st = await svc.status(spec);
    if (!st.running) throw new Error('not running');
    const before = (await childOf(st.pid))!;
    await host.exec(['kill', '-KILL', String(before)]);
    const deadline = Date.now() + 5000;
    let after: number | undefined;
    while (Date.now() < deadline) {
      after = await supervisedChild(host, st.pid);
      if (after !== undefined && after !== before) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect((await svc.status(spec)).running).toBe(true);
    const log = await svc.logTail('web', 50);
    expect(log).toMatch(/dpgc-supervise: python3 exited \(status 137\); starting it again in 1s/);
  });

  it('stop ends the loop and the daemon together; nothing is started again', async () => {
    const st = await svc.status(spec);
    if (!st.running) throw new Error('not running');
    const child = (await childOf(st.pid))!;
    expect(await svc.stop(spec)).toEqual({ changed: true });
    expect(await alive(st.pid)).toBe(false);
    expect(await alive(child)).toBe(false);
    await new Promise((r) => setTimeout(r, 1500));
    const r = await host.exec(['sh', '-c', 'exec 3<>/dev/tcp/127.0.61.1/18998'], { mutates: false, allowFailure: true });
    expect(r.exitCode).not.toBe(0);
  });

  it('killing the loop and the daemon (a host death) leaves nothing to restart them', async () => {
    const r = await svc.start(spec);
    const child = (await childOf(r.pid!))!;
    await host.exec(['kill', '-KILL', String(r.pid), String(child)]);
    await new Promise((res) => setTimeout(res, 1500));
    expect((await svc.status(spec)).running).toBe(false);
  });
});
