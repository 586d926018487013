import { Etcd3 } from 'etcd3';
import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureFirewall, firewallTable } from '../../src/components/firewall.js';
import { loadInventory } from '../../src/config/load.js';
import { hostPaths } from '../../src/config/paths.js';
import { LocalHost } from '../../src/hosts/local.js';
import { serviceManager, type ServiceSpec } from '../../src/hosts/services.js';
import { MARKER } from '../../src/lab/marker.js';
import { runLockKey } from '../../src/lock-etcd.js';
import { lockPathFor, processStartTime } from '../../src/lock.js';
import { silentLogger } from '../../src/output/log.js';
import { alive } from '../helpers/proc.js';
import { BIN, dpgc } from '../helpers/cli.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * Issue 10, findings 1 and 3 on a lab of its own (subnet 127.0.120): `lab down`
 * deletes only what dpgc made (and sprint 5's firewall tables) and honours --dry-run; one run at a time per
 * cluster, on this machine (the lock file) and across machines (etcd). A small supervised daemon in the ctl host's root stands in for the
 * lab's services where a whole sprint is not needed.
 */

let lab: TestLab;
let labDir: string;
/** The lab's subnet (DPGC_TEST_SUBNET moves it, test/helpers/lab.ts): every address below is in it. */
const SUBNET = process.env['DPGC_TEST_SUBNET'] ?? '127.0.120';
const web: ServiceSpec = { name: 'web', user: 'postgres', argv: ['python3', '-m', 'http.server', '--bind', `${SUBNET}.10`, '18120'], listen: { address: `${SUBNET}.10`, port: 18120 } };

async function ctlServices() {
  const inv = await loadInventory(lab.config);
  const ctl = inv.hosts.find((h) => h.name === 'ctl')!;
  return serviceManager(new LocalHost({ name: 'ctl', address: ctl.address, dryRun: false, logger: silentLogger }), { services: 'supervised' }, hostPaths(inv, ctl));
}

/** The tables of this lab's firewall that nftables has now. */
async function labTables(): Promise<string[]> {
  const inv = await loadInventory(lab.config);
  const ours = new Set(inv.hosts.map((h) => firewallTable(inv, h)));
  return (await execa('nft', ['list', 'tables'])).stdout.split('\n').map((l) => l.replace(/^table inet /, '')).filter((t) => ours.has(t));
}

let webPid: number;
beforeAll(async () => {
  lab = await createLab(SUBNET);
  labDir = join(lab.dir, 'lab');
  webPid = (await (await ctlServices()).start(web)).pid!;
}, 60_000);
afterAll(async () => {
  await lab?.down();
}, 180_000);

describe('one run at a time per cluster (finding 3)', () => {
  it('a second `dpgc sprint 0` while one runs exits 2 naming the holder; Ctrl-C on the first releases the lock', async () => {
    const lock = lockPathFor(lab.config);
    const first = execa('node', [BIN, '-c', lab.config, 'sprint', '0'], { reject: false, env: { CI: 'true', NO_COLOR: '1' }, stdin: 'ignore', timeout: 300_000 });
    for (let i = 0; i < 100 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(lock)).toBe(true);
    const second = await lab.cli(['sprint', '0']);
    expect(second.code, second.stderr).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`error: another dpgc run is changing this cluster: pid ${first.pid} on ${hostname()}, running \`dpgc -c \\S+ sprint 0\`, since \\S+ \\(\\d+ s ago\\)`));
    expect(second.stderr).toContain('Wait for it to finish, then run again.');
    first.kill('SIGINT');
    const r = await first;
    expect(r.exitCode, String(r.stderr)).toBe(130);
    expect(existsSync(lock)).toBe(false);
  }, 320_000);

  it('a lock held by a live process refuses `lab down` with exit 2, and nothing is stopped or removed', async () => {
    const holder = execa('sleep', ['60']);
    try {
      await writeFile(
        lockPathFor(lab.config),
        JSON.stringify({ host: hostname(), pid: holder.pid, command: 'dpgc sprint 1', since: new Date().toISOString(), startTime: processStartTime(holder.pid!) }),
      );
      const r = await lab.cli(['--yes', 'lab', 'down']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`another dpgc run is changing this cluster: pid ${holder.pid} on ${hostname()}, running \`dpgc sprint 1\``);
      expect(alive(webPid)).toBe(true);
      expect(existsSync(join(labDir, 'ctl', MARKER))).toBe(true);
    } finally {
      holder.kill();
      await holder.catch(() => {});
    }
  });

  it('a stale lock (its process gone) is taken over with a message, and released at the end', async () => {
    const gone = Number((await execa('sh', ['-c', 'echo $$'])).stdout.trim());
    await writeFile(lockPathFor(lab.config), JSON.stringify({ host: hostname(), pid: gone, command: 'dpgc sprint 1', since: '2026-01-01T00:00:00.000Z', startTime: '1' }));
    const r = await lab.cli(['lab', 'init', '--force', '--subnet', SUBNET, '--dir', labDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: Took over a stale lock ${lockPathFor(lab.config)} (pid ${gone} on ${hostname()}, running \`dpgc sprint 1\`, since 2026-01-01T00:00:00.000Z`);
    expect(r.stderr).toContain(`: pid ${gone} is not running.`);
    expect(existsSync(lockPathFor(lab.config))).toBe(false);
  });
});

describe('one run at a time across machines: the lock in etcd (finding 3)', () => {
  // One etcd member on db1's address stands in for the cluster's etcd (db2 and db3 refuse, as members that are down).
  let etcd: ResultPromise;
  let client: Etcd3;
  const key = runLockKey('dpgc-lab');

  beforeAll(async () => {
    const a = `http://${SUBNET}.11`;
    etcd = execa('etcd', ['--name', 'solo', '--data-dir', join(lab.dir, 'etcd'), '--listen-client-urls', `${a}:2379`, '--advertise-client-urls', `${a}:2379`, '--listen-peer-urls', `${a}:2380`, '--initial-advertise-peer-urls', `${a}:2380`, '--initial-cluster', `solo=${a}:2380`], { reject: false, stdio: 'ignore' });
    client = new Etcd3({ hosts: [`${a}:2379`] });
    for (let i = 0; i < 100; i++) {
      if (await client.get('probe').then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 30_000);
  afterAll(async () => {
    client?.close();
    etcd?.kill();
    await etcd?.catch(() => {});
  });

  it('a run from another machine holding the cluster in etcd refuses `sprint 0` with exit 2, naming it', async () => {
    const lease = client.lease(15);
    await lease.put(key).value(JSON.stringify({ host: 'other-machine', pid: 4242, command: 'dpgc sprint 3', since: new Date().toISOString(), startTime: null }));
    try {
      const r = await lab.cli(['sprint', '0']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/error: another dpgc run is changing cluster dpgc-lab: pid 4242 on other-machine, running `dpgc sprint 3`, since \S+ \(\d+ s ago\) \(lock \/dpgc\/dpgc-lab\/run-lock in etcd\)/);
      expect(existsSync(lockPathFor(lab.config))).toBe(false);
    } finally {
      await lease.revoke();
    }
  });

  it('a run holds the key while it changes hosts, and releases it when it ends (here by Ctrl-C)', async () => {
    const run = execa('node', [BIN, '-c', lab.config, 'sprint', '0'], { reject: false, env: { CI: 'true', NO_COLOR: '1' }, stdin: 'ignore', timeout: 300_000 });
    let held: string | null = null;
    for (let i = 0; i < 100 && !held; i++) {
      held = await client.get(key).string();
      if (!held) await new Promise((r) => setTimeout(r, 100));
    }
    expect(JSON.parse(held ?? '{}')).toMatchObject({ host: hostname(), pid: run.pid });
    run.kill('SIGINT');
    expect((await run).exitCode).toBe(130);
    expect(await client.get(key).string()).toBeNull();
  }, 320_000);
});

describe("daemons start with an environment built from scratch (finding 5)", () => {
  it('`sprint 0` run with DPGC_SECRET_* in its environment starts PostgreSQL without any of it', async () => {
    const secret = 'monitoring-password-from-the-environment';
    const r = await lab.cli(['sprint', '0'], { env: { DPGC_SECRET_MONITORING: secret, SOMETHING_OF_THE_OPERATOR: 'x' }, timeoutMs: 300_000 });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const inv = await loadInventory(lab.config);
    // Sprint 0 runs one PostgreSQL, on db1 (sprint 3 adds the replicas).
    for (const name of ['db1']) {
      const spec = inv.hosts.find((h) => h.name === name)!;
      const [pid] = readFileSync(join(hostPaths(inv, spec).runDir, 'postgresql.pid'), 'utf8').split(' ');
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      expect(environ, name).not.toContain(secret);
      expect(environ.split('\0').filter(Boolean).map((e) => e.slice(0, e.indexOf('='))).sort(), name).toEqual(['HOME', 'LC_ALL', 'PATH']);
    }
  }, 320_000);
});

describe('`lab down` deletes only what dpgc made (finding 1)', () => {
  it('`lab init --dir /tmp` is refused, and nothing is written', async () => {
    const config = join(lab.dir, 'tmp-lab.yaml');
    const r = await dpgc(['-c', config, 'lab', 'init', '--subnet', SUBNET, '--dir', '/tmp']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: refusing /tmp as a lab directory: it is a system directory');
    expect(existsSync(config)).toBe(false);
  });

  it('`lab init --dir` on a non-empty directory dpgc did not make is refused, and it is left as it was', async () => {
    const dir = join(lab.dir, 'mine');
    await mkdir(dir);
    await writeFile(join(dir, 'precious.txt'), 'keep me');
    const r = await dpgc(['-c', join(lab.dir, 'mine.yaml'), 'lab', 'init', '--subnet', SUBNET, '--dir', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${dir} exists, is not empty, and was not made by dpgc (no ${MARKER} marker)`);
    expect((await execa('ls', ['-A', dir])).stdout.split('\n')).toEqual(['precious.txt']);
  });

  it('`lab down --dry-run` says what it would stop and remove, and changes nothing', async () => {
    // Sprint 5's firewall, loaded by its own step (no daemon needs it here): `lab down` must leave no rule behind.
    const ctx = await lab.context();
    await Promise.all(ctx.inventory.hosts.map(async (h) => ensureFirewall(ctx.inventory, await ctx.pool.node(h.name))));
    expect(await labTables()).toHaveLength(4);
    const r = await lab.cli(['--dry-run', 'lab', 'down']);
    expect(r.code, r.stderr).toBe(0);
    for (const t of await labTables()) expect(r.stderr).toContain(`would run \`nft delete table inet ${t}\``);
    expect(await labTables()).toHaveLength(4);
    expect(r.stderr).toContain(`[dry-run] would stop web on ctl (pid ${webPid})`);
    expect(r.stderr).toContain(`[dry-run] would remove ${labDir}/ctl`);
    expect(r.stderr).toContain(`[dry-run] would remove ${labDir}\n`);
    expect(r.stderr).toContain('nothing was changed');
    expect(alive(webPid)).toBe(true);
    for (const h of ['ctl', 'db1', 'db2', 'db3']) expect(existsSync(join(labDir, h, MARKER))).toBe(true);
    expect(existsSync(join(labDir, 'ctl', 'run', 'dpgc', 'web.pid'))).toBe(true);
  });

  it('an inventory whose roots dpgc did not make is refused before anything is stopped, and a file beside them survives', async () => {
    const foreign = join(lab.dir, 'some', 'dir', 'lab');
    await mkdir(join(foreign, 'db1'), { recursive: true });
    await writeFile(join(foreign, 'unrelated.txt'), 'not dpgc');
    const config = join(lab.dir, 'foreign.yaml');
    await writeFile(config, (await readFile(lab.config, 'utf8')).replaceAll(labDir, foreign));
    const r = await dpgc(['-c', config, '--yes', 'lab', 'down']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`error: ${config}: ${foreign} does not carry dpgc's lab marker (${MARKER}); \`lab down\` stops and removes nothing in a directory dpgc did not create`);
    expect(readFileSync(join(foreign, 'unrelated.txt'), 'utf8')).toBe('not dpgc');
    expect(alive(webPid)).toBe(true);
  });

  it('a root that goes through `..` is refused', async () => {
    const config = join(lab.dir, 'dotdot.yaml');
    await writeFile(config, (await readFile(lab.config, 'utf8')).replace(`root: ${labDir}/db1`, `root: ${labDir}/../../../db1`));
    const r = await dpgc(['-c', config, '--yes', 'lab', 'down']);
    expect(r.code).toBe(3);
    // The inventory's schema refuses it first; lab down's own guard (unit-tested) would refuse it too.
    expect(r.stderr).toMatch(/hosts\[\d\]\.root: .*a "\.\." segment is not allowed|db1.*unsafe: contains a `\.` or `\.\.` component/);
    expect(alive(webPid)).toBe(true);
  });

  it('`lab down` stops the lab and removes exactly the directories it made; a file someone put in the lab directory survives', async () => {
    await writeFile(join(labDir, 'notes.txt'), 'mine');
    const r = await lab.cli(['--yes', 'lab', 'down']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Stopped web on ctl');
    expect(r.stderr).toContain(`warning: Kept ${labDir}: it also holds ${labDir}/notes.txt, which dpgc did not create.`);
    expect(alive(webPid)).toBe(false);
    expect((await execa('ls', ['-A', labDir])).stdout.split('\n').sort()).toEqual([MARKER, 'notes.txt']);
    expect(r.stderr).toContain("Removed db1's firewall (nftables table inet");
    expect(await labTables()).toEqual([]);
  }, 180_000);
});
