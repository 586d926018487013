import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { parseInventory } from '../../src/config/load.js';
import { shellJoin } from '../../src/hosts/quote.js';
import { LAB_SSH_PORT, labSshFiles } from '../../src/lab/ssh.js';
import { BIN, dpgc } from '../helpers/cli.js';
import { createLab, type TestLab } from '../helpers/lab.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

/**
 * `dpgc init` as an operator meets it: the real binary in a real terminal
 * (tmux: keys sent, screen read back), against the SSH lab on 127.0.160.x
 * (one sshd on .10–.13, port 2222) and, for the host without sudo, a test
 * sshd on 127.0.160.20 that lets a non-root user in.
 */
const SUBNET = '127.0.160';
const run = promisify(execFile);
/** A user with a shell and no sudo rights (and no sudo at all on this machine). */
const NOSUDO_USER = 'dpgc-wz-nosudo';

class Terminal {
  private constructor(
    private readonly sock: string,
    readonly name: string,
  ) {}

  /** `argv` runs in a fresh tmux session (a pty: isTTY), without CI, and prints its exit code when it ends. */
  static async start(sock: string, name: string, argv: string[]): Promise<Terminal> {
    const cmd = `env -u CI NO_COLOR=1 ${shellJoin(['node', BIN, ...argv])}; echo "__EXIT=$?__"; sleep 600`;
    await run('tmux', ['-S', sock, 'new-session', '-d', '-s', name, '-x', '150', '-y', '50', cmd]);
    return new Terminal(sock, name);
  }

  async screen(): Promise<string> {
    const { stdout } = await run('tmux', ['-S', this.sock, 'capture-pane', '-p', '-J', '-S', '-2000', '-t', this.name]);
    return stdout;
  }

  /** Until the screen (scrollback included) matches, `count` times; names what it waited for and shows the screen otherwise. */
  async waitFor(re: RegExp, timeoutMs = 20_000, count = 1): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
    for (;;) {
      const s = await this.screen();
      if ((s.match(g)?.length ?? 0) >= count) return s;
      if (Date.now() > deadline) throw new Error(`terminal ${this.name}: no ${re} (×${count}) within ${timeoutMs} ms; screen:\n${s}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Text typed as is, then Enter. */
  async line(text: string): Promise<void> {
    if (text) await run('tmux', ['-S', this.sock, 'send-keys', '-t', this.name, '-l', text]);
    await this.keys('Enter');
  }

  async keys(...keys: string[]): Promise<void> {
    await run('tmux', ['-S', this.sock, 'send-keys', '-t', this.name, ...keys]);
  }

  /** Answers `question` (its n-th appearance) with `text`. */
  async answer(question: RegExp, text: string, n = 1): Promise<void> {
    await this.waitFor(question, 20_000, n);
    await this.line(text);
  }
}

describe('dpgc init in a terminal, against the SSH lab', () => {
  let lab: TestLab;
  let sock: string;
  let key: string;
  let sshd: Sshd | undefined;
  const t0 = Date.now();

  beforeAll(async () => {
    lab = await createLab(SUBNET, { ssh: true });
    sock = join(lab.dir, 'tmux.sock');
    key = labSshFiles(join(lab.dir, 'lab')).clientKey;
  });

  afterAll(async () => {
    await run('tmux', ['-S', sock, 'kill-server']).catch(() => undefined);
    await sshd?.stop();
    await run('userdel', [NOSUDO_USER]).catch(() => undefined);
    await lab?.down();
    // Budget: 2 minutes for this file.
    process.stderr.write(`init-wizard.test.ts: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  });

  it('a whole run: a wrong address and an unknown host key are explained and asked again; the inventory it writes is accepted by plan 0 (over SSH, with the keys it recorded)', async () => {
    const inv = join(lab.dir, 'wizard.yaml');
    const knownHosts = join(lab.dir, 'wizard_known_hosts');
    const term = await Terminal.start(sock, 'happy', ['-c', inv, 'init']);
    await term.answer(/Cluster name/, 'orders');
    await term.answer(/SSH user/, '');
    await term.answer(/SSH private key/, key);
    await term.answer(/SSH port/, String(LAB_SSH_PORT));
    await term.answer(/known_hosts file/, knownHosts);

    // Nothing listens on .99: refused, explained, asked again.
    await term.answer(/Host 1: DNS name or IPv4 address/, `${SUBNET}.99`);
    await term.waitFor(new RegExp(`✘ .*${SUBNET}\\.99:${LAB_SSH_PORT} refused the connection — is sshd running\\?`));
    await term.waitFor(/Enter host 1 again/);

    // An unknown host key, shown as ssh shows it: refused (nothing recorded), then accepted.
    await term.answer(/Host 1: DNS name or IPv4 address/, `${SUBNET}.10`, 2);
    let s = await term.waitFor(/Is that the key of 127\.0\.160\.10\?/);
    expect(s).toMatch(new RegExp(`The authenticity of host '${SUBNET}\\.10' port ${LAB_SSH_PORT} can't be established\\.\\n(ssh-)?ed25519 key fingerprint is SHA256:[A-Za-z0-9+/]{43}\\.`, 'i'));
    await term.line('n');
    await term.waitFor(/host key of 127\.0\.160\.10 not trusted, nothing recorded/);
    await term.answer(/Host 1: DNS name or IPv4 address/, `${SUBNET}.10`, 3);
    await term.answer(/Is that the key of 127\.0\.160\.10\?/, 'y', 2);
    s = await term.waitFor(/✔ 127\.0\.160\.10: /);
    expect(s).toMatch(/✔ 127\.0\.160\.10: Debian GNU\/Linux 12 \(bookworm\), \d+ CPUs?, [\d.]+ GiB memory, [\d.]+ GiB free at \/var\/lib\/postgresql, time sync \w+, root: yes/);
    expect(existsSync(knownHosts)).toBe(false);

    for (const [i, octet] of [[2, 11], [3, 12], [4, 13]] as const) {
      await term.answer(new RegExp(`Host ${i}: DNS name`), `${SUBNET}.${octet}`);
      await term.answer(new RegExp(`Is that the key of 127\\.0\\.160\\.${octet}\\?`), 'y');
      await term.waitFor(new RegExp(`✔ 127\\.0\\.160\\.${octet}: `));
    }
    await term.answer(/Host 5: .*empty: no more hosts/, '');
    // The placement table comes line by line: wait for its last line, not its heading.
    s = await term.waitFor(/db3\s+127\.0\.160\.13\s+postgres, etcd/);
    expect(s).toMatch(/Role placement/);
    expect(s).toMatch(/ctl\s+127\.0\.160\.10\s+haproxy, pgbouncer, monitoring, backup/);
    await term.line('');
    await term.answer(/Backup repository host/, '');
    s = await term.waitFor(/balanced\s+worst-case failover [\d.]+ s/);
    expect(s).toMatch(/Failover timing profile/);
    expect(s).toMatch(/balanced\s+worst-case failover 28\.25 s/);
    await term.line('');
    await term.answer(/Vector engine/, '');
    await term.answer(/Full backups to keep/, '');
    await term.answer(/Backup schedule/, '');
    await term.answer(/Certificate authority/, '');
    s = await term.waitFor(/Write .*wizard\.yaml\?/);
    expect(s).toMatch(/host\s+db1 127\.0\.160\.11: postgres, etcd/);
    await term.line('');
    // Offered next: plan 0, sprint 0, or nothing. These "real hosts" are this machine, whose own
    // Debian cluster in /var/lib/postgresql plan 0 rightly refuses to touch, so: nothing now.
    s = await term.waitFor(/Show what sprint 0 would change \(dpgc plan 0\)/);
    expect(s).toMatch(/Next/);
    await term.keys('Down', 'Down');
    await term.line('');
    s = await term.waitFor(/__EXIT=\d+__/);
    expect(s).toMatch(/When ready: `dpgc -c .*wizard\.yaml plan 0`/);
    expect(s).toContain('__EXIT=0__');

    const text = await readFile(inv, 'utf8');
    expect(parseInventory(text, inv).issues).toEqual([]);
    expect(text).toMatch(/# db1: Debian GNU\/Linux 12/);
    expect(text).toMatch(/# Profile balanced: worst-case write outage after a host death/);
    // The four confirmed keys, recorded as OpenSSH writes them, once the inventory was written.
    const kh = (await readFile(knownHosts, 'utf8')).trim().split('\n');
    expect(kh.map((l) => l.split(' ')[0])).toEqual([10, 11, 12, 13].map((o) => `[${SUBNET}.${o}]:${LAB_SSH_PORT}`));
    // Accepted by `dpgc plan 0`. On this machine the hosts are the lab's, so the lab's two
    // differences from real hosts (README "How the lab maps to real hosts") are added to a copy: each
    // host's root directory and supervised services. Host keys and SSH settings stay as init wrote them.
    const doc = parseDocument(text);
    doc.set('lab', true);
    doc.setIn(['defaults', 'services'], 'supervised');
    ['ctl', 'db1', 'db2', 'db3'].forEach((name, i) => doc.setIn(['hosts', i, 'root'], join(lab.dir, 'lab', name)));
    const labCopy = join(lab.dir, 'wizard-lab.yaml');
    await writeFile(labCopy, doc.toString());
    const plan = await dpgc(['-c', labCopy, 'plan', '0', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect((JSON.parse(plan.stdout) as { sprint: number; changes: number }).changes).toBeGreaterThan(0);
  });

  it('a host whose SSH user has no sudo is explained and asked again; Ctrl-C at the question exits 130 and writes nothing', async () => {
    await run('useradd', ['-M', '-d', '/nonexistent', '-s', '/bin/sh', '-p', '*', NOSUDO_USER]);
    sshd = await startSshd({ address: `${SUBNET}.20` });
    // sshd reads authorized_keys as the user logging in: the helper's temp dir is root's own (0700).
    await chmod(sshd.dir, 0o755);
    await chmod(join(sshd.dir, 'authorized_keys'), 0o644);
    const knownHosts = join(lab.dir, 'nosudo_known_hosts');
    await writeFile(knownHosts, `${sshd.knownHostsLine}\n`);
    const inv = join(lab.dir, 'nosudo.yaml');
    const term = await Terminal.start(sock, 'nosudo', ['-c', inv, 'init']);
    await term.answer(/Cluster name/, '');
    await term.answer(/SSH user/, NOSUDO_USER);
    await term.answer(/SSH private key/, sshd.keyPath);
    await term.answer(/SSH port/, String(sshd.port));
    await term.answer(/known_hosts file/, knownHosts);
    await term.answer(/Host 1: DNS name or IPv4 address/, `${SUBNET}.20`);
    // Debian's image has no sudo; with sudo installed the refusal is the password one.
    const s = await term.waitFor(/Enter host 1 again/);
    expect(s).toMatch(new RegExp(`✘ 127\\.0\\.160\\.20: (sudo is not installed on ${SUBNET}\\.20|${NOSUDO_USER} cannot use sudo without a password).*NOPASSWD: ALL`));
    await term.waitFor(/Host 1: DNS name or IPv4 address/, 20_000, 2);
    await term.keys('C-c');
    const end = await term.waitFor(/__EXIT=\d+__/);
    expect(end).toContain('__EXIT=130__');
    expect(end).toMatch(/interrupted at a question; nothing was written/);
    expect(end).not.toMatch(/bug in dpgc| {4}at /);
    expect(existsSync(inv)).toBe(false);
    expect(await readFile(knownHosts, 'utf8')).toBe(`${sshd.knownHostsLine}\n`);
  });

  it('dpgc sprint 0 in a terminal asks what the inventory leaves open (and writes it back), prints the plan, and asks once; "no" changes nothing', async () => {
    const term = await Terminal.start(sock, 'sprint', ['-c', lab.config, 'sprint', '0']);
    await term.answer(/Vector engine \(postgres\.vector is not set\)/, '');
    let s = await term.waitFor(/Apply sprint 0: \d+ steps? that changes? the hosts/, 60_000);
    expect(s).toMatch(/Plan for sprint 0 \(/);
    expect(s).toMatch(/\n {2}~ .*db1/);
    await term.line('n');
    s = await term.waitFor(/__EXIT=\d+__/);
    expect(s).toMatch(/Nothing changed\./);
    expect(s).toContain('__EXIT=0__');
    const text = await readFile(lab.config, 'utf8');
    // The answer is in the file with why it is there, and the file's own comments are kept: the next run asks nothing.
    expect(text).toMatch(/^# dpgc lab: a whole cluster on this machine/);
    expect(text).toMatch(/postgres:\n {2}# Chosen at `dpgc sprint 0`\.\n {2}vector: pgvector/);
    expect(existsSync(join(lab.dir, 'lab', 'db1', 'var', 'lib', 'postgresql', '15', 'main'))).toBe(false);
  });
});
