import { describe, expect, it } from 'vitest';
import { expiringCerts, type CertInPlace } from '../../src/components/ca.js';

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
