import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { caPathsFor, certDecision, coverageGaps, expiringCerts, operatorMayServe, readCertFacts } from '../../src/components/ca.js';
import { checkOperatorCerts, hostServerCerts, loadOperatorCerts, operatorCertProblems, type CertInput } from '../../src/components/host-certs.js';
import { certRequest } from '../../src/components/pgbackrest.js';
import { parseInventory } from '../../src/config/load.js';
import type { Inventory } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { labInv } from '../helpers/lab-inventory.js';

/**
 * The operator's own host certificates (inventory hosts[i].tls): every rule
 * they are checked by before a host is touched, on certificates openssl makes
 * in a temporary directory.
 */
let dir: string;
let n = 0;
const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' }).toString();
interface Pair {
  cert: string;
  key: string;
}
function keyPem(): string {
  return ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256');
}
async function makeCa(subject: string): Promise<Pair> {
  const d = join(dir, `ca${++n}`);
  await mkdir(d);
  const key = keyPem();
  await writeFile(`${d}/ca.key`, key);
  const cert = ossl('req', '-x509', '-new', '-key', `${d}/ca.key`, '-sha256', '-days', '3650', '-subj', subject, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  return { cert, key };
}
/** A certificate signed by `ca` with these extensions (openssl's extension syntax). */
async function leaf(ca: Pair, ext: string[], o: { days?: number; cn?: string } = {}): Promise<Pair> {
  const d = join(dir, `leaf${++n}`);
  await mkdir(d);
  const key = keyPem();
  await Promise.all([writeFile(`${d}/k`, key), writeFile(`${d}/ca.crt`, ca.cert), writeFile(`${d}/ca.key`, ca.key), writeFile(`${d}/ext`, `${ext.join('\n')}\n`)]);
  const csr = execFileSync('openssl', ['req', '-new', '-key', `${d}/k`, '-subj', `/CN=${o.cn ?? 'db2'}`], { stdio: 'pipe' });
  const cert = execFileSync('openssl', ['x509', '-req', '-CA', `${d}/ca.crt`, '-CAkey', `${d}/ca.key`, '-days', String(o.days ?? 397), '-set_serial', String(n), '-extfile', `${d}/ext`], { input: csr, stdio: 'pipe' }).toString();
  return { cert, key };
}

/** A real inventory's shape: db2 runs PostgreSQL and etcd, ctl runs HAProxy and PgBouncer. */
const inv = parseInventory(
  stringify({
    cluster: 'prod',
    hosts: [
      { name: 'ctl', address: '10.0.0.10', roles: ['haproxy', 'pgbouncer', 'monitoring', 'backup'] },
      { name: 'db1', address: '10.0.0.11', roles: ['postgres', 'etcd'] },
      { name: 'db2', address: '10.0.0.12', roles: ['postgres', 'etcd'] },
      { name: 'db3', address: '10.0.0.13', roles: ['postgres', 'etcd'] },
    ],
  }),
  '/srv/dpgc/prod.yaml',
).inventory!;
const db2 = inv.hosts[2]!;
const GOOD = ['subjectAltName=DNS:db2,DNS:ctl,IP:10.0.0.12,IP:10.0.0.10', 'extendedKeyUsage=serverAuth,clientAuth', 'basicConstraints=critical,CA:FALSE'];

let ca: Pair;
let good: Pair;
const input = (p: Pair, over: Partial<CertInput> = {}): CertInput => ({ certPem: p.cert, keyPem: p.key, caPem: ca.cert, caFile: '/srv/dpgc/prod.ca/ca.crt', needs: hostServerCerts(inv, db2), now: new Date(), ...over });
const problems = (i: CertInput) => operatorCertProblems(i).problems;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-host-certs-'));
  ca = await makeCa('/O=Example Corp/CN=Example Issuing CA');
  good = await leaf(ca, GOOD);
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('what an operator certificate stands in for', () => {
  it('every server certificate on the host by its roles, not pgBackRest\'s (an identity) nor any client certificate', () => {
    expect(hostServerCerts(inv, db2).map((r) => r.name)).toEqual(['metrics', 'postgres', 'patroni', 'etcd']);
    expect(hostServerCerts(inv, inv.hosts[0]!).map((r) => r.name)).toEqual(['metrics', 'pgbouncer']);
    expect(operatorMayServe(certRequest(db2))).toBe(false);
    expect(operatorMayServe({ name: 'etcd-client', cn: 'patroni-db2', dns: [], ips: [], usage: ['client'] })).toBe(false);
  });
  it("PostgreSQL's needs the HAProxy hosts' names (TLS passes through them); etcd's clientAuth, and 127.0.0.1 on a loopback lab", () => {
    const needs = hostServerCerts(inv, db2);
    expect(needs.find((r) => r.name === 'postgres')).toMatchObject({ dns: ['db2', 'ctl'], ips: ['10.0.0.12', '10.0.0.10'] });
    expect(needs.find((r) => r.name === 'etcd')?.usage).toEqual(['server', 'client']);
    const lab = labInv();
    expect(hostServerCerts(lab, lab.hosts.find((h) => h.name === 'db2')!).find((r) => r.name === 'etcd')?.ips).toEqual(['127.0.30.12', '127.0.0.1']);
  });
});

describe('operatorCertProblems', () => {
  it('passes a sound certificate, alone or followed by its chain', () => {
    expect(problems(input(good))).toEqual([]);
    expect(problems(input({ ...good, cert: `${good.cert}${ca.cert}` }))).toEqual([]);
  });

  it('refuses a file with no PEM certificate, one that does not parse, and one holding a private key', () => {
    expect(problems(input({ ...good, cert: 'not a certificate\n' }))).toEqual([{ field: 'cert', message: expect.stringContaining('holds no PEM certificate') }]);
    expect(problems(input({ ...good, cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }))).toEqual([{ field: 'cert', message: expect.stringContaining('its first certificate does not parse') }]);
    expect(problems(input({ ...good, cert: `${good.cert}${good.key}` }))).toEqual([{ field: 'cert', message: expect.stringMatching(/holds a PRIVATE KEY block .* readable by every user on the host/) }]);
  });

  it('refuses a CA certificate first (the host\'s own must come first)', () => {
    expect(problems(input({ ...good, cert: `${ca.cert}${good.cert}`, key: ca.key })).map((p) => p.message)).toEqual(
      expect.arrayContaining([expect.stringContaining('starts with a CA certificate')]),
    );
  });

  it('refuses a key that is not an unencrypted private key, and one that belongs to another certificate', () => {
    expect(problems(input({ ...good, key: 'garbage' }))).toEqual([{ field: 'key', message: expect.stringContaining('cannot be read as an unencrypted private key') }]);
    const encrypted = execFileSync('openssl', ['pkey', '-aes256', '-passout', 'pass:secret'], { input: good.key, stdio: 'pipe' }).toString();
    expect(problems(input({ ...good, key: encrypted }))).toEqual([{ field: 'key', message: expect.stringContaining('unencrypted') }]);
    expect(problems(input({ ...good, key: keyPem() }))).toEqual([{ field: 'key', message: expect.stringContaining('does not belong to the certificate') }]);
  });

  it('refuses a certificate not valid yet or expired, saying dpgc never renews it; one ending within 30 days is said, not refused (refusing would lock out every repair)', () => {
    const to = new Date(new X509Certificate(good.cert).validTo);
    const at = (d: Date) => problems(input(good, { now: d })).map((p) => p.message);
    expect(at(new Date(Date.now() - 86_400_000))[0]).toMatch(/^is not valid before /);
    expect(at(new Date(to.getTime() + 1000))[0]).toMatch(/^expired on .*never renews/);
    const soon = operatorCertProblems(input(good, { now: new Date(to.getTime() - 10 * 86_400_000 - 1000) }));
    expect(soon.problems).toEqual([]);
    expect(soon.warnings).toEqual([expect.stringMatching(/^ends on .*, in 10 days, and dpgc never renews an operator's certificate: put a renewed one there \(r\.certs\.valid fails until then\)$/)]);
    expect(at(new Date(to.getTime() - 31 * 86_400_000))).toEqual([]);
    expect(operatorCertProblems(input(good, { now: new Date(to.getTime() - 31 * 86_400_000) })).warnings).toBeUndefined();
  });

  it("refuses a certificate another CA signed, naming both; and any while the cluster has no CA yet", async () => {
    const other = await makeCa('/O=Someone Else/CN=Other CA');
    const theirs = await leaf(other, GOOD);
    expect(problems(input(theirs))).toEqual([
      { field: 'cert', message: expect.stringMatching(/^was not signed by the cluster's CA \/srv\/dpgc\/prod.ca\/ca.crt \(its issuer is O=Someone Else, CN=Other CA, the CA is O=Example Corp, CN=Example Issuing CA\)/) },
    ]);
    expect(problems(input(good, { caPem: undefined }))[0]?.message).toMatch(/there is none yet \(\/srv\/dpgc\/prod.ca\/ca.crt\)/);
  });

  it("refuses a certificate missing a name a client checks, naming the name and who needs it; the CN alone does not count", async () => {
    const noCtl = await leaf(ca, ['subjectAltName=DNS:db2,IP:10.0.0.12', 'extendedKeyUsage=serverAuth,clientAuth']);
    expect(problems(input(noCtl))).toEqual([{ field: 'cert', message: expect.stringContaining('does not name ctl, 10.0.0.10 among its subject alternative names (ctl: PostgreSQL; 10.0.0.10: PostgreSQL)') }]);
    const cnOnly = await leaf(ca, ['extendedKeyUsage=serverAuth,clientAuth']);
    expect(problems(input(cnOnly))[0]?.message).toMatch(/^does not name db2, 10.0.0.12, ctl, 10.0.0.10 among its subject alternative names \(db2: the metrics endpoints, PostgreSQL, Patroni's REST API, etcd; /);
  });

  it('refuses a certificate without clientAuth on an etcd host (its certificate dials peers too); one with no usage restriction passes', async () => {
    const serverOnly = await leaf(ca, ['subjectAltName=DNS:db2,DNS:ctl,IP:10.0.0.12,IP:10.0.0.10', 'extendedKeyUsage=serverAuth']);
    expect(problems(input(serverOnly))).toEqual([{ field: 'cert', message: expect.stringMatching(/^lacks the extended key usage clientAuth \(etcd\) \(etcd presents .*\); add it$/) }]);
    // Not on a host without etcd.
    expect(problems(input(serverOnly, { needs: hostServerCerts(inv, db2).filter((r) => r.name !== 'etcd') }))).toEqual([]);
    const any = await leaf(ca, ['subjectAltName=DNS:db2,DNS:ctl,IP:10.0.0.12,IP:10.0.0.10']);
    expect(problems(input(any))).toEqual([]);
  });

  it('taken out of the inventory, it is replaced by one dpgc issues: it does not say what dpgc asks for', () => {
    const pub = createPublicKey(createPrivateKey(good.key)).export({ type: 'spki', format: 'pem' }).toString();
    const facts = readCertFacts(good.cert, ca.cert, pub)!;
    expect(facts).toMatchObject({ signedByCa: true, keyMatches: true });
    for (const req of hostServerCerts(inv, db2)) expect(certDecision(facts, req, new Date()), req.name).toMatchObject({ issue: true });
  });

  it('coverageGaps: a wildcard covers one whole label only', async () => {
    const wild = new X509Certificate((await leaf(ca, ['subjectAltName=DNS:*.db.example.com', 'extendedKeyUsage=serverAuth'])).cert);
    expect(coverageGaps(wild, { dns: ['db2.db.example.com', 'a.b.db.example.com'], ips: [], usage: ['server', 'client'] })).toEqual({ names: ['a.b.db.example.com'], usage: ['client'] });
  });
});

describe('loadOperatorCerts: the files on the control machine', () => {
  /** An inventory beside its CA, db2 with `tls` as given (relative to the inventory). */
  async function setup(tls: { cert: string; key: string }, files: { cert?: string; key?: string; keyMode?: number }): Promise<Inventory> {
    const d = join(dir, `inv${++n}`);
    await mkdir(d);
    const file = join(d, 'prod.yaml');
    const p = caPathsFor(file);
    await mkdir(p.dir, { mode: 0o700 });
    await writeFile(p.cert, ca.cert);
    await writeFile(p.key, ca.key, { mode: 0o600 });
    if (files.cert !== undefined) await writeFile(join(d, tls.cert), files.cert);
    if (files.key !== undefined) {
      await writeFile(join(d, tls.key), files.key);
      await chmod(join(d, tls.key), files.keyMode ?? 0o600);
    }
    const text = stringify({
      cluster: 'prod',
      hosts: [
        { name: 'ctl', address: '10.0.0.10', roles: ['haproxy', 'pgbouncer', 'monitoring', 'backup'] },
        { name: 'db2', address: '10.0.0.12', roles: ['postgres', 'etcd'], tls },
        { name: 'db1', address: '10.0.0.11', roles: ['postgres', 'etcd'] },
        { name: 'db3', address: '10.0.0.13', roles: ['postgres', 'etcd'] },
      ],
    });
    await writeFile(file, text);
    const r = parseInventory(text, file);
    if (!r.inventory) throw new Error(JSON.stringify(r.issues));
    return r.inventory;
  }
  const refusal = async (i: Inventory) => {
    const e = await checkOperatorCerts(i).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  };

  it('resolves relative paths from the inventory, and loads a sound pair', async () => {
    const i = await setup({ cert: 'db2.crt', key: 'db2.key' }, { cert: good.cert, key: good.key });
    expect(i.hosts[1]!.tls).toEqual({ cert: join(i.file, '..', 'db2.crt'), key: join(i.file, '..', 'db2.key') });
    await expect(checkOperatorCerts(i)).resolves.toBeUndefined();
    const m = await loadOperatorCerts(i, ca.cert);
    expect(m.get('db2')).toMatchObject({ field: 'hosts[1].tls', certPem: good.cert, keyPem: good.key });
  });

  it('names the field, its line and the file: a missing file, a key others can read', async () => {
    const i = await setup({ cert: 'db2.crt', key: 'db2.key' }, { key: good.key, keyMode: 0o644 });
    const e = await refusal(i);
    expect(e.exitCode).toBe(3);
    expect(e.issues).toEqual([
      { file: i.file, line: expect.any(Number), column: expect.any(Number), path: 'hosts[1].tls.cert', message: `${i.hosts[1]!.tls!.cert} does not exist; put the host's certificate there, or fix the path (relative paths are relative to the inventory)` },
      { file: i.file, line: expect.any(Number), column: expect.any(Number), path: 'hosts[1].tls.key', message: expect.stringContaining(`hosts[1].tls.key ${i.hosts[1]!.tls!.key} is readable by group or others (mode 644); dpgc refuses to use it; Run \`chmod 600 ${i.hosts[1]!.tls!.key}\``) },
    ]);
    expect(e.message.split('\n')[0]).toBe(`the operator's certificates in ${i.file} cannot be used (2 problems):`);
    expect(e.hint).toContain('Nothing was changed on any host.');
  });

  it('a certificate problem names the certificate file at hosts[N].tls.cert, a key problem the key file at hosts[N].tls.key', async () => {
    const i = await setup({ cert: 'db2.crt', key: 'db2.key' }, { cert: good.cert, key: keyPem() });
    const e = await refusal(i);
    expect(e.issues.map((x) => `${x.path}: ${x.message}`)).toEqual([`hosts[1].tls.key: ${i.hosts[1]!.tls!.key} does not belong to the certificate in tls.cert (their public keys differ); give the key the certificate was made for`]);
  });

  it('the schema refuses a path with `..` or odd characters, at its line', () => {
    const r = parseInventory(stringify({ cluster: 'prod', hosts: [{ name: 'db2', address: '10.0.0.12', roles: ['postgres'], tls: { cert: '../x.crt', key: 'a b.key' } }] }), '/srv/dpgc/prod.yaml');
    expect(r.issues.map((x) => x.path)).toEqual(['hosts[0].tls.cert', 'hosts[0].tls.key']);
    expect(r.issues[0]?.message).toContain('a ".." segment is not allowed');
  });

  it('status and readiness say which certificate is the operator\'s, that dpgc never renews it', () => {
    const at = new Date('2027-01-01T00:00:00Z');
    expect(expiringCerts([{ where: 'db2', file: '/t/postgres.crt', cn: 'db2', notAfter: new Date('2027-01-11T00:00:00Z'), operator: 'hosts[2].tls.cert /srv/dpgc/db2.crt' }], at)).toEqual([
      "db2: /t/postgres.crt (CN db2) expires 2027-01-11, in 10 days: the operator's own certificate (hosts[2].tls.cert /srv/dpgc/db2.crt), which dpgc never renews: put a renewed one there and run `dpgc sprint 5`",
    ]);
  });
});
