import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProbeFacts } from '../../src/components/probe.js';
import { judgeProbe } from '../../src/components/probe.js';
import { parseInventory } from '../../src/config/load.js';
import { HostError } from '../../src/errors.js';
import type { HostProber } from '../../src/cli/wizard/hosts.js';
import { askInit, type InitDeps } from '../../src/cli/wizard/init-wizard.js';
import { inventoryDocument } from '../../src/cli/wizard/inventory-doc.js';
import { proposeRoles } from '../../src/cli/wizard/roles.js';
import { askSprintQuestions } from '../../src/cli/wizard/sprint-wizard.js';
import { parseHostInput } from '../../src/cli/wizard/validate.js';
import { scriptedPrompts, type Step } from '../helpers/scripted-prompts.js';

/**
 * The question logic of `dpgc init` and the sprint wizard, through the real
 * @inquirer/prompts prompts rendered by @inquirer/testing. Hosts are a fake
 * prober here (the end-to-end file drives real sshd); what is checked is
 * which question comes when, what is refused, and what is written.
 */
const GOOD: ProbeFacts = {
  uid: '0',
  privilegeError: undefined,
  os: { id: 'debian', idLike: [], versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
  facts: { memoryBytes: 8 * 1024 ** 3, cpus: 4 },
  freeBytes: 50 * 1024 ** 3,
  timeSync: 'yes',
};
const NO_SUDO: ProbeFacts = { ...GOOD, uid: undefined, privilegeError: 'sudo: a password is required', os: undefined, facts: undefined, freeBytes: undefined, timeSync: 'unknown' };

/** Known keys for every address except those listed as new; `nosudo` addresses fail the probe. */
function fakeProber(o: { newKeys?: string[]; nosudo?: string[]; unreachable?: string[] } = {}): HostProber & { trusted: string[] } {
  const trusted: string[] = [];
  return {
    trusted,
    resolve: async (name) => {
      if (name === 'db1.example.com') return '10.0.0.11';
      throw new HostError(`cannot resolve ${name} to an IPv4 address (ENOTFOUND): check the name and this machine's DNS, or give the address`);
    },
    hostKey: async (t) => {
      if (o.unreachable?.includes(t.address)) throw new HostError(`${t.name}: ${t.address}:22 refused the connection — is sshd running?`);
      return o.newKeys?.includes(t.address) && !trusted.includes(t.address) ? { known: false, type: 'ssh-ed25519', fingerprint: `SHA256:${'k'.repeat(43)}` } : { known: true, fingerprint: `SHA256:${'a'.repeat(43)}` };
    },
    trust: async (t) => void trusted.push(t.address),
    probe: async (t, dataPath) => judgeProbe(o.nosudo?.includes(t.address) ? NO_SUDO : GOOD, { name: t.name, user: t.ssh.user, dataPath }),
  };
}

let key: string;
/** Temporary directories this file makes, removed at the end. */
const temps: string[] = [];
const tempDir = async (prefix: string) => {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
};
afterAll(async () => {
  for (const d of temps) await rm(d, { recursive: true, force: true });
});
beforeAll(async () => {
  key = join(await tempDir('dpgc-wizard-'), 'id_ed25519');
  await writeFile(key, 'not read: the fake prober never logs in\n');
});

const opening = (): Step[] => [
  { q: /Cluster name/, a: 'orders', invalid: ['Orders!'], refusal: /lowercase letters, digits/ },
  { q: /SSH user/, a: '' },
  { q: /SSH private key/, a: key, invalid: ['/nonexistent/key'], refusal: /does not exist: create a key/ },
  { q: /SSH port/, a: '', invalid: ['70000'], refusal: /port number from 1 to 65535/ },
  { q: /known_hosts/, a: '' },
];

function deps(prompts: InitDeps['prompts'], prober: HostProber, flags: InitDeps['flags'] = {}): InitDeps {
  const log = (l: string) => (prompts as { say?: (l: string) => void } | undefined)?.say?.(l);
  return { prompts, prober, flags, acceptNewHostKeys: false, log };
}

describe('dpgc init: questions', () => {
  it('proves each host as it is entered: a refused address, a failed probe and a refused host key are explained and asked again', async () => {
    const prober = fakeProber({ newKeys: ['10.0.0.13'], nosudo: ['10.0.0.99'] });
    const p = scriptedPrompts([
      ...opening(),
      // The schema's own words for a bad address, and IPv6 refused with the reason.
      { q: /Host 1: DNS name or IPv4/, a: 'db1.example.com', invalid: ['300.1.1.1'], refusal: /300 is above 255/ },
      { q: /Host 2/, a: '10.0.0.99', invalid: ['fe80::1'], refusal: /IPv6 address; dpgc configures every service on IPv4/ },
      { q: /Host 2/, a: '10.0.0.12' },
      { q: /Host 3/, a: '10.0.0.13' },
      { q: /Is that the key of 10\.0\.0\.13\?/, a: false },
      { q: /Host 3/, a: '10.0.0.13' },
      { q: /Is that the key of 10\.0\.0\.13\?/, a: true },
      { q: /Host 4: .*empty: no more hosts/, a: '' },
      { q: /Role placement/, a: 'accept' },
      { q: /Backup repository host/, a: 'none' },
      { q: /Failover timing profile/, a: 'safe' },
      { q: /Vector engine/, a: 'pgvector' },
      { q: /Full backups to keep/, a: '3', invalid: ['0'], refusal: /at least 1 full backup/ },
      { q: /Backup schedule/, a: '6h' },
      { q: /Certificate authority/, a: 'generate' },
    ]);
    const a = await askInit(deps(p, prober));
    expect(p.remaining()).toEqual([]);
    const said = p.said.join('\n');
    expect(said).toMatch(/✘ 10\.0\.0\.99: cannot run commands as root on 10\.0\.0\.99: sudo: a password is required/);
    expect(said).toMatch(/Enter host 2 again/);
    expect(said).toMatch(/ssh-ed25519 key fingerprint is SHA256:k{43}/);
    expect(said).toMatch(/host key of 10\.0\.0\.13 not trusted, nothing recorded/);
    // A confirmed key is recorded only when the inventory is written (init.ts), never before.
    expect(prober.trusted).toEqual([]);
    expect(a.hosts.find((h) => h.address === '10.0.0.13')?.recordKey?.address).toBe('10.0.0.13');
    expect(a.hosts.map((h) => [h.name, h.address, h.roles.join(',')])).toEqual([
      ['db1', '10.0.0.11', 'postgres,etcd,haproxy,pgbouncer,monitoring'],
      ['db2', '10.0.0.12', 'postgres,etcd'],
      ['db3', '10.0.0.13', 'postgres,etcd'],
    ]);
    // Each profile is offered with the failover it buys, from timings.ts.
    const timing = p.screens.find((s) => /Failover timing profile/.test(s)) ?? '';
    expect(timing).toMatch(/balanced\s+worst-case failover 28\.25 s/);
    expect(timing).toMatch(/safe\s+worst-case failover 30 s/);
    expect(a).toMatchObject({ cluster: 'orders', timings: 'safe', vector: 'pgvector', backup: { retention_full: 3, schedule: '6h' }, ca: { kind: 'generate' } });

    const text = inventoryDocument(a, 'dpgc.yaml', new Date('2026-12-02T00:00:00Z')).toString();
    const parsed = parseInventory(text, 'dpgc.yaml');
    expect(parsed.issues).toEqual([]);
    expect(parsed.inventory?.timings.profile).toBe('safe');
    expect(text).toMatch(/# db1 \(db1\.example\.com\): Debian GNU\/Linux 12 \(bookworm\), 4 CPUs, 8\.0 GiB memory/);
    expect(text).toMatch(/# Profile safe: worst-case write outage after a host death .* = 30s/);
    expect(text).toMatch(/No host has the backup role yet: sprint 4 needs one without PostgreSQL/);
  });

  it('proposes a control host from 4 hosts, lets the operator move it, and puts the repository there', async () => {
    const p = scriptedPrompts([
      ...opening(),
      { q: /Host 1/, a: '10.0.0.10' },
      { q: /Host 2/, a: '10.0.0.11' },
      { q: /Host 3/, a: '10.0.0.12' },
      { q: /Host 4/, a: '10.0.0.13' },
      { q: /Host 5/, a: '' },
      { q: /Role placement/, a: 'control' },
      { q: /Control host/, a: '3' },
      { q: /Role placement/, a: 'edit' },
      { q: /Which host/, a: '0' },
      { q: /Roles of db1/, a: ['postgres'] },
      // db1 without etcd leaves 2 members: the rules refuse it, so "use" is not offered until it is fixed.
      { q: /Role placement(?![\s\S]*Use this placement)/, a: 'reset' },
      { q: /Role placement/, a: 'accept' },
      { q: /Backup repository host/, a: 'host:ctl' },
      { q: /Failover timing profile/, a: 'balanced' },
      { q: /Vector engine/, a: 'ruvector' },
      { q: /Full backups to keep/, a: '' },
      { q: /Backup schedule/, a: '', invalid: ['every $day'], refusal: /an interval such as 6h or 1d/ },
      { q: /Certificate authority/, a: 'generate' },
    ]);
    const a = await askInit(deps(p, fakeProber()));
    expect(p.remaining()).toEqual([]);
    expect(p.said.join('\n')).toMatch(/etcd needs an odd number of members/);
    expect(a.hosts.map((h) => [h.name, h.roles.join(',')])).toEqual([
      ['ctl', 'haproxy,pgbouncer,monitoring,backup'],
      ['db1', 'postgres,etcd'],
      ['db2', 'postgres,etcd'],
      ['db3', 'postgres,etcd'],
    ]);
    expect(a.vector).toBe('ruvector');
    expect(parseInventory(inventoryDocument(a, 'x.yaml').toString(), 'x.yaml').issues).toEqual([]);
  });

  it('asks nothing without a terminal: a missing answer is a usage error naming its flag, a bad one names the flag and the rule', async () => {
    await expect(askInit(deps(undefined, fakeProber(), { sshKey: key }))).rejects.toThrow(/at least 3 hosts, got 0[\s\S]*/);
    await expect(askInit(deps(undefined, fakeProber(), { sshKey: key }))).rejects.toMatchObject({ hint: expect.stringMatching(/Pass --host/) });
    await expect(askInit(deps(undefined, fakeProber(), { cluster: 'Bad Name', sshKey: key }))).rejects.toThrow(/--cluster Bad Name: expected a cluster name/);
    await expect(askInit(deps(undefined, fakeProber({ unreachable: ['10.0.0.11'] }), { sshKey: key, host: ['10.0.0.11', 'fe80::1', '10.0.0.13'] }))).rejects.toThrow(/^--host fe80::1: fe80::1 is an IPv6 address/);
    const hosts = ['10.0.0.11', '10.0.0.12', '10.0.0.13'];
    await expect(askInit(deps(undefined, fakeProber(), { sshKey: key, host: hosts, timings: 'quick' }))).rejects.toThrow(/--timings quick: /);
    // A new host key without --accept-new-host-keys: the host's error, naming the flag.
    await expect(askInit(deps(undefined, fakeProber({ newKeys: ['10.0.0.12'] }), { sshKey: key, host: hosts }))).rejects.toThrow(/unknown SSH host key for 10\.0\.0\.12.*--accept-new-host-keys/);
    // With the flag, and a repository host that is not one of the database hosts: proven and added with the backup role.
    const a = await askInit({ ...deps(undefined, fakeProber({ newKeys: ['10.0.0.12'] }), { sshKey: key, host: ['10.0.0.12', '10.0.0.13', '10.0.0.14'], backupHost: 'db1.example.com' }), acceptNewHostKeys: true });
    expect(a.hosts.at(-1)).toMatchObject({ name: 'ctl', input: 'db1.example.com', address: '10.0.0.11', roles: ['backup'] });
    expect(a.hosts[0]).toMatchObject({ name: 'db1', recordKey: { address: '10.0.0.12' } });
  });

  it('a backup host that runs PostgreSQL is refused', async () => {
    await expect(askInit(deps(undefined, fakeProber(), { sshKey: key, host: ['10.0.0.11', '10.0.0.12', '10.0.0.13'], backupHost: '10.0.0.12' }))).rejects.toThrow(/runs PostgreSQL; the repository must be on another host/);
  });
});

describe('wizard pieces', () => {
  it('reads host answers: IPv4 by the schema, DNS names, IPv6 refused with the reason', () => {
    expect(parseHostInput('10.0.0.1')).toEqual({ kind: 'ipv4', address: '10.0.0.1' });
    expect(parseHostInput('DB1.Example.com.')).toEqual({ kind: 'dns', name: 'db1.example.com' });
    expect(parseHostInput('010.0.0.1')).toMatchObject({ problem: expect.stringMatching(/leading zero/) });
    expect(parseHostInput('2001:db8::1')).toMatchObject({ problem: expect.stringMatching(/IPv6/) });
    expect(parseHostInput('db_1')).toMatchObject({ problem: expect.stringMatching(/expected a host name/) });
  });

  it('proposes roles from the host count', () => {
    expect(proposeRoles(3).map((r) => r.join(','))).toEqual(['postgres,etcd,haproxy,pgbouncer,monitoring', 'postgres,etcd', 'postgres,etcd']);
    expect(proposeRoles(7).filter((r) => r.includes('etcd'))).toHaveLength(5);
    expect(proposeRoles(5).filter((r) => r.includes('etcd'))).toHaveLength(3);
  });

  it('judges a probe with preflight limits, and says what to do', () => {
    const v = judgeProbe({ ...GOOD, os: { id: 'centos', idLike: [], versionId: '7', prettyName: 'CentOS 7' }, freeBytes: 1024 ** 3, timeSync: 'no' }, { name: 'db1', user: 'root', dataPath: '/var/lib/postgresql' });
    expect(v.problems.join('\n')).toMatch(/CentOS 7 is not supported/);
    expect(v.problems.join('\n')).toMatch(/only 1\.0 GiB free .* free some space/);
    expect(v.warnings.join('\n')).toMatch(/not synchronised .* chrony/);
    expect(judgeProbe({ ...NO_SUDO, privilegeError: 'sh: 1: sudo: not found' }, { name: 'db1', user: 'admin', dataPath: '/x' }).problems[0]).toMatch(/sudo is not installed on db1/);
  });
});

describe('dpgc sprint N: the questions the inventory leaves open', () => {
  it('asks them once, writes the answers back with their comments and keeps the file\'s own', async () => {
    const file = join(await tempDir('dpgc-sprintq-'), 'dpgc.yaml');
    await writeFile(file, ['# our cluster', 'cluster: orders', 'backup:', '  repo_path: /srv/backup # the big disk', 'hosts:', ...['10.0.0.11', '10.0.0.12', '10.0.0.13'].map((a, i) => `  - { name: db${i + 1}, address: ${a}, roles: [postgres, etcd] }`), ''].join('\n'));
    const p = scriptedPrompts([
      { q: /Full backups to keep \(backup\.retention_full is not set\)/, a: '4' },
      { q: /Backup schedule/, a: 'daily' },
    ]);
    expect(await askSprintQuestions(p, file, 4)).toBe(2);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/# our cluster/);
    expect(text).toMatch(/repo_path: \/srv\/backup # the big disk/);
    expect(text).toMatch(/# Chosen at `dpgc sprint 4`: full backups kept.\n {2}retention_full: 4/);
    expect(parseInventory(text, file).inventory?.backup).toMatchObject({ retention_full: 4, schedule: 'daily' });
    // Answered now: the next run asks nothing.
    expect(await askSprintQuestions(scriptedPrompts([]), file, 4)).toBe(0);
    const t = scriptedPrompts([{ q: /Failover timing profile.*\(timings is not set\)/, a: 'fast' }]);
    expect(await askSprintQuestions(t, file, 2)).toBe(1);
    expect(t.screens[0]).toMatch(/fast\s+worst-case failover 28\.125 s/);
    expect(parseInventory(await readFile(file, 'utf8'), file).inventory?.timings.profile).toBe('fast');
  });
});
