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
});
