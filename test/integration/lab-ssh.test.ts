import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckOutcome } from '../../src/checks/types.js';
import { loadInventory } from '../../src/config/load.js';
import { hostPaths } from '../../src/config/paths.js';
import { LocalHost } from '../../src/hosts/local.js';
import { serviceManager } from '../../src/hosts/services.js';
import { ensureLabSshd, LAB_SSH_PORT, labSshFiles } from '../../src/lab/ssh.js';
import { silentLogger } from '../../src/output/log.js';
import { dpgc } from '../helpers/cli.js';
import { createLab, type TestLab } from '../helpers/lab.js';
import { alive } from '../helpers/proc.js';

/**
 * The lab over SSH (127.0.50.x): `lab init --ssh` starts one supervised sshd
 * for the four lab addresses with generated keys and a pre-filled
 * known_hosts; sprint 0 runs over it unchanged; `lab down` stops it.
 */
const SUBNET = '127.0.50';
const ADDRESSES = [10, 11, 12, 13].map((o) => `${SUBNET}.${o}`);
const run = promisify(execFile);

interface SprintJson {
  tasks: { changed: number; unchanged: number };
  results: CheckOutcome[];
  passed: boolean;
}

/** Leftovers of an interrupted run of this file: stop their processes by pid file, then delete them. */
async function removeStaleLabs(): Promise<void> {
  const prefix = `dpgc-test-${SUBNET.replace(/\./g, '-')}-`;
  for (const e of await readdir('/tmp')) {
    if (!e.startsWith(prefix)) continue;
    const config = join('/tmp', e, 'dpgc.yaml');
    if (existsSync(config)) await dpgc(['-c', config, '--yes', 'lab', 'down']);
    await rm(join('/tmp', e), { recursive: true, force: true });
  }
}

function answers(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.once('error', () => done(false));
    s.once('connect', () => done(true));
  });
}

/** Processes whose command line mentions `text` (the lab directory), this test's own excluded. */
async function processesMentioning(text: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const cmd = (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
    if (cmd.includes(text) && !cmd.includes('vitest')) out.push(`${e}: ${cmd}`);
  }
  return out;
}

describe('the lab over SSH', () => {
  let lab: TestLab;
  let labDir: string;
  const timings: Record<string, number> = {};

  const sshdService = async () => {
    const inv = await loadInventory(lab.config);
    const ctl = inv.hosts.find((h) => h.name === 'ctl')!;
    const host = new LocalHost({ name: 'ctl', address: ctl.address, dryRun: false, logger: silentLogger });
    return { inv, services: serviceManager(host, ctl, hostPaths(inv, ctl)), logFile: `${hostPaths(inv, ctl).logDir}/sshd.log` };
  };
  const sshdPid = async () => {
    const st = await (await sshdService()).services.status({ name: 'sshd' });
    return st.running ? st.pid : undefined;
  };

  beforeAll(async () => {
    await removeStaleLabs();
    const t = Date.now();
    lab = await createLab(SUBNET, { ssh: true });
    timings['lab init --ssh'] = (Date.now() - t) / 1000;
    labDir = join(lab.dir, 'lab');
  });
  afterAll(async () => {
    console.log(`lab over ssh timings (s): ${JSON.stringify(timings)}`);
    await lab?.down();
  });

  it('writes an SSH inventory whose known_hosts already holds the lab host key for every address', async () => {
    const inv = await loadInventory(lab.config);
    const files = labSshFiles(labDir);
    for (const h of inv.hosts) {
      expect(h.transport).toBe('ssh');
      expect(h.ssh).toMatchObject({ user: 'root', port: LAB_SSH_PORT, key: files.clientKey, known_hosts: files.knownHosts });
    }
    const [type, b64] = (await readFile(`${files.hostKey}.pub`, 'utf8')).trim().split(' ');
    expect(type).toBe('ssh-ed25519');
    expect(await readFile(files.knownHosts, 'utf8')).toBe(ADDRESSES.map((a) => `[${a}]:${LAB_SSH_PORT} ssh-ed25519 ${b64}\n`).join(''));
    expect(await readFile(files.authorizedKeys, 'utf8')).toBe(await readFile(`${files.clientKey}.pub`, 'utf8'));
    expect((await stat(files.clientKey)).mode & 0o077).toBe(0);
    // The rendered config, validated by sshd itself.
    await run('/usr/sbin/sshd', ['-t', '-f', files.config]);
  });

  it('runs one supervised sshd, in the foreground, listening on every lab address', async () => {
    const pid = await sshdPid();
    expect(pid).toBeDefined();
    expect(await readlink(`/proc/${pid}/exe`)).toBe('/usr/sbin/sshd');
    // sshd rewrites its process title, but keeps the flags in it.
    expect((await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ')).toMatch(/\/usr\/sbin\/sshd -D -e -f \S+\/ssh\/sshd_config/);
    for (const a of ADDRESSES) expect(await answers(a, LAB_SSH_PORT), a).toBe(true);
    expect(existsSync(`${labDir}/ctl/run/dpgc/sshd.pid`)).toBe(true);
  });

  it('reaches every host over SSH as root, trusting the host key without --accept-new-host-keys', async () => {
    const ctx = await lab.context();
    for (const h of ctx.inventory.hosts) {
      const n = await ctx.pool.node(h.name);
      expect(n.host.transport).toBe('ssh');
      expect((await n.host.exec(['id', '-u'], { mutates: false })).stdout.trim()).toBe('0');
      // sshd sets SSH_CONNECTION to "client-ip client-port server-ip server-port".
      const conn = (await n.host.exec(['sh', '-c', 'echo "$SSH_CONNECTION"'], { mutates: false })).stdout.trim();
      expect(conn.split(' ').slice(2)).toEqual([h.address, String(LAB_SSH_PORT)]);
    }
    await ctx.pool.close();
  });

  it('leaves a running lab sshd alone: init --ssh again and ensureLabSshd change nothing', async () => {
    const pid = await sshdPid();
    const knownHosts = await readFile(labSshFiles(labDir).knownHosts, 'utf8');
    const r = await lab.cli(['lab', 'init', '--ssh', '--force', '--subnet', SUBNET, '--dir', labDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Started|Restarted/);
    expect(await sshdPid()).toBe(pid);
    expect(await readFile(labSshFiles(labDir).knownHosts, 'utf8')).toBe(knownHosts);
    expect(await ensureLabSshd(await loadInventory(lab.config))).toEqual({ changed: false, pid });
  });

  it('runs sprint 0 over SSH: every check passes, a second run changes nothing', async () => {
    let t = Date.now();
    const first = await lab.cli(['sprint', '0', '--json']);
    timings['sprint 0, first run'] = (Date.now() - t) / 1000;
    expect(first.code, first.stderr).toBe(0);
    const doc = JSON.parse(first.stdout) as SprintJson;
    expect(doc.passed).toBe(true);
    expect(doc.tasks.changed).toBeGreaterThan(0);
    expect(doc.results.length).toBeGreaterThan(0);
    for (const x of doc.results) expect(x.verdict, `${x.id}: ${x.detail}`).toBe('pass');

    t = Date.now();
    const second = await lab.cli(['sprint', '0']);
    timings['sprint 0, second run'] = (Date.now() - t) / 1000;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/Nothing to change: all \d+ tasks were already done/);
    expect(second.stderr).not.toMatch(/\(changed/);
  });

  it("really went over SSH: sshd logged the key logins; PostgreSQL, started through them, has none of the session's environment", async () => {
    const { logFile } = await sshdService();
    expect(await readFile(logFile, 'utf8')).toMatch(/Accepted publickey for root from 127\.0\.0\.1 port \d+ ssh2: ED25519 SHA256:/);
    const ctx = await lab.context();
    const db1 = await ctx.pool.node('db1');
    const pg = await db1.services.status({ name: 'postgresql' });
    expect(pg.running).toBe(true);
    expect((await loadInventory(lab.config)).hosts.find((h) => h.name === 'db1')?.transport).toBe('ssh');
    // The supervisor's shell ran inside an sshd session on db1's address (SSH_CONNECTION, SHLVL=1 from the
    // sshd config); the daemon's environment is built from scratch, so none of it, nor of dpgc's, reaches it.
    const environ = (await readFile(`/proc/${pg.running ? pg.pid : 0}/environ`, 'utf8')).split('\0').filter(Boolean);
    expect(environ.map((e) => e.slice(0, e.indexOf('='))).sort()).toEqual(['HOME', 'LC_ALL', 'PATH']);
    await ctx.pool.close();
  });

  it('fails with exit 4, naming host and port and asking whether sshd runs, when sshd is down; ensureLabSshd brings it back', async () => {
    const { services, inv } = await sshdService();
    const pid = await sshdPid();
    expect((await services.stop({ name: 'sshd' })).changed).toBe(true);

    const r = await lab.cli(['sprint', '0']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`error: (ctl|db[123]): ${SUBNET.replace(/\./g, '\\.')}\\.1[0-3]:${LAB_SSH_PORT} refused the connection — is sshd running\\?`));
    expect(r.stderr).not.toMatch(/^\s+at /m);

    const back = await ensureLabSshd(inv);
    expect(back.changed).toBe(true);
    expect(back.pid).not.toBe(pid);
    const ctx = await lab.context();
    expect((await (await ctx.pool.node('db2')).host.exec(['id', '-u'], { mutates: false })).stdout.trim()).toBe('0');
    await ctx.pool.close();
  });

  it('lab down stops sshd and every lab process, and removes the lab directory', async () => {
    const pid = (await sshdPid())!;
    const r = await lab.cli(['--yes', 'lab', 'down']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Stopped sshd on ctl');
    expect(existsSync(labDir)).toBe(false);
    expect(alive(pid)).toBe(false);
    for (const a of ADDRESSES) expect(await answers(a, LAB_SSH_PORT), a).toBe(false);
    // Sessions close with their clients; give the last one a moment.
    for (let i = 0; i < 20 && (await processesMentioning(labDir)).length; i++) await new Promise((res) => setTimeout(res, 250));
    expect(await processesMentioning(labDir)).toEqual([]);
  });
});
