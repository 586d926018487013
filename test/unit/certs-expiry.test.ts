import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, caPathsFor, expiringCerts, isOwnCa, type CertInPlace } from '../../src/components/ca.js';
import { silentLogger } from '../../src/output/log.js';

const now = new Date('2026-12-02T00:00:00Z');
const cert = (where: string, file: string, iso: string | undefined, cn?: string): CertInPlace => ({ where, file, cn, notAfter: iso ? new Date(iso) : undefined });

describe('expiringCerts (r.certs.valid)', () => {
  it('passes certificates with 30 days or more left', () => {
    expect(expiringCerts([cert('db1', '/t/a.crt', '2027-01-01T00:00:00Z'), cert('db2', '/t/a.crt', '2027-12-31T00:00:00Z')], now)).toEqual([]);
  });
  it('names the ones ending sooner, soonest first, expired ones and unreadable files too', () => {
    expect(
      expiringCerts(
        [cert('db1', '/t/a.crt', '2026-12-20T00:00:00Z', 'db1'), cert('db2', '/t/b.crt', '2026-11-01T00:00:00Z'), cert('db3', '/t/c.crt', undefined), cert('db3', '/t/ok.crt', '2028-01-01T00:00:00Z')],
        now,
      ),
    ).toEqual(['db3: /t/c.crt is not a readable certificate', 'db2: /t/b.crt expired 2026-11-01', 'db1: /t/a.crt (CN db1) expires 2026-12-20, in 18 days']);
  });
});

describe('the cluster CA near its end (CertificateAuthority.open)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dpgc-ca-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** A CA with `subject`, its key at the inventory's CA paths, valid for `days`. */
  async function caWith(name: string, subject: string, days: number): Promise<{ inventory: string; pem: string }> {
    const inventory = join(dir, `${name}.yaml`);
    const p = caPathsFor(inventory);
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p.key]);
    execFileSync('openssl', ['req', '-x509', '-new', '-key', p.key, '-sha256', '-days', String(days), '-subj', subject, '-addext', 'basicConstraints=critical,CA:TRUE', '-out', p.cert]);
    return { inventory, pem: await readFile(p.cert, 'utf8') };
  }
  const control = () => CertificateAuthority.controlHost({ dryRun: false, logger: silentLogger });

  it("renews dpgc's own CA with the same key when it has under 30 days left", async () => {
    const { inventory, pem } = await caWith('ours', '/O=dpgc/CN=dpgc prod CA', 10);
    expect(isOwnCa(pem, 'prod')).toBe(true);
    const { changed, ca } = await CertificateAuthority.open(control(), inventory, 'prod', { mayCreate: true });
    expect(changed).toBe(true);
    expect(new X509Certificate(ca.certPem).publicKey.export({ format: 'pem', type: 'spki' })).toBe(new X509Certificate(pem).publicKey.export({ format: 'pem', type: 'spki' }));
    expect(new Date(new X509Certificate(ca.certPem).validTo).getTime()).toBeGreaterThan(Date.now() + 3000 * 86_400_000);
  });

  it("never re-signs an operator's CA, however close its end (r.certs.valid reports it)", async () => {
    const { inventory, pem } = await caWith('theirs', '/O=Example Corp/CN=Example Issuing CA', 10);
    expect(isOwnCa(pem, 'prod')).toBe(false);
    const { changed, ca } = await CertificateAuthority.open(control(), inventory, 'prod', { mayCreate: true });
    expect(changed).toBe(false);
    expect(ca.certPem).toBe(pem);
    expect(await readFile(caPathsFor(inventory).cert, 'utf8')).toBe(pem);
  });
});
