import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { caPathsFor } from '../../src/components/ca.js';
import { SECRET_NAMES, secretsPathFor } from '../../src/config/secrets.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * The operator's own host certificates (inventory hosts[i].tls), refused before
 * any host is touched: a lab inventory of its own (127.0.180.x; `lab init`
 * only, no daemon started), an operator CA beside it, and for each bad
 * certificate the command a real run would be (`sprint 5`, `plan 5`) exits 3
 * naming the field, its line and the file, with no stack trace, and writes
 * nothing under the lab's directory.
 */
let lab: TestLab;
let inventoryText: string;
let subnet: string;
let certs: string;
const ossl = (args: string[], input?: string) => execFileSync('openssl', args, { stdio: 'pipe', ...(input === undefined ? {} : { input }) }).toString();

beforeAll(async () => {
  lab = await createLab('127.0.180');
  inventoryText = await readFile(lab.config, 'utf8');
  subnet = /address: (\d+\.\d+\.\d+)\.10/.exec(inventoryText)![1]!;
  // Every secret in place, so the sprint commands create no secrets file either.
  await writeFile(secretsPathFor(lab.config), SECRET_NAMES.map((n) => `${n}: not-a-real-password-${n}\n`).join(''), { mode: 0o600 });
  // The operator's CA, where dpgc looks for the cluster's.
  const ca = caPathsFor(lab.config);
  await mkdir(ca.dir, { mode: 0o700 });
  ossl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ca.key]);
  await chmod(ca.key, 0o600);
  ossl(['req', '-x509', '-new', '-key', ca.key, '-days', '3650', '-subj', '/O=Example Corp/CN=Example Issuing CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-out', ca.cert]);
  certs = join(lab.dir, 'certs');
  await mkdir(certs);
}, 60_000);
afterAll(async () => {
  await lab?.down();
});

const labDir = () => `${lab.dir}/lab`;
const written = async (): Promise<string[]> => {
  if (!existsSync(labDir())) return [];
  const all = await readdir(labDir(), { recursive: true, withFileTypes: true });
  return all.filter((e) => !e.isDirectory() && e.name !== '.dpgc-lab').map((e) => join(e.parentPath, e.name));
};

/** db2's certificate (hosts[2]): signed by `signer` (the cluster's CA unless told), with these extensions. */
function makeCert(name: string, o: { san?: string; eku?: string; days?: number; signer?: { cert: string; key: string } } = {}): { cert: string; key: string } {
  const ca = o.signer ?? caPathsFor(lab.config);
  const [cert, key, ext] = [join(certs, `${name}.crt`), join(certs, `${name}.key`), join(certs, `${name}.ext`)];
  ossl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  execFileSync('chmod', ['600', key]);
  const san = o.san ?? `DNS:db2,DNS:ctl,IP:${subnet}.12,IP:${subnet}.10,IP:127.0.0.1`;
  execFileSync('sh', ['-c', 'printf "%s\\n" "$@" > "$0"', ext, `subjectAltName=${san}`, `extendedKeyUsage=${o.eku ?? 'serverAuth,clientAuth'}`]);
  const csr = ossl(['req', '-new', '-key', key, '-subj', '/CN=db2']);
  const pem = ossl(['x509', '-req', '-CA', ca.cert, '-CAkey', ca.key, '-days', String(o.days ?? 397), '-extfile', ext], csr);
  execFileSync('sh', ['-c', 'cat > "$0"', cert], { input: pem });
  return { cert, key };
}

async function withTls(tls: { cert: string; key: string }): Promise<void> {
  const doc = parseDocument(inventoryText);
  doc.setIn(['hosts', 2, 'tls'], tls);
  await writeFile(lab.config, doc.toString());
}

describe("the operator's host certificates are checked before any host is touched", () => {
  /** Each case: the bad file, and the other one of its pair (a sound certificate's key for a missing certificate). */
  const cases: [string, () => Promise<{ field: 'cert' | 'key'; file: string; message: RegExp }>][] = [
    ['a certificate file that does not exist', async () => ({ field: 'cert', file: join(certs, 'nowhere.crt'), message: /does not exist; put the host's certificate there/ })],
    ['a key others can read', async () => {
      const p = makeCert('readable');
      await chmod(p.key, 0o644);
      return { field: 'key', file: p.key, message: /is readable by group or others \(mode 644\); dpgc refuses to use it; Run `chmod 600 / };
    }],
    ['a key that belongs to another certificate', async () => {
      const p = makeCert('mismatch');
      const other = makeCert('other');
      execFileSync('cp', [other.key, p.key]);
      return { field: 'key', file: p.key, message: /does not belong to the certificate in tls.cert/ };
    }],
    ["a certificate another CA signed", async () => {
      const d = join(certs, 'other-ca');
      await mkdir(d, { recursive: true });
      const other = { cert: join(d, 'ca.crt'), key: join(d, 'ca.key') };
      ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', other.key, '-days', '30', '-subj', '/CN=Other CA', '-out', other.cert]);
      return { field: 'cert', file: makeCert('foreign', { signer: other }).cert, message: /was not signed by the cluster's CA .*\(its issuer is CN=Other CA/ };
    }],
    ["a certificate without the HAProxy host's name", async () => ({ field: 'cert', file: makeCert('noctl', { san: `DNS:db2,IP:${subnet}.12,IP:127.0.0.1` }).cert, message: /does not name ctl, \S+ among its subject alternative names \(ctl: PostgreSQL;/ })],
    ['a certificate without clientAuth on an etcd member', async () => ({ field: 'cert', file: makeCert('serveronly', { eku: 'serverAuth' }).cert, message: /lacks the extended key usage clientAuth \(etcd\)/ })],
    ['a file that is not PEM', async () => {
      const p = makeCert('der');
      execFileSync('sh', ['-c', 'openssl x509 -in "$0" -outform DER -out "$0.der" && mv "$0.der" "$0"', p.cert]);
      return { field: 'cert', file: p.cert, message: /holds no PEM certificate/ };
    }],
  ];

  it.each(cases)('%s: exit 3 naming the field, its line and the file; nothing written', async (_what, make) => {
    const bad = await make();
    // The pair of the bad file: its own key (or certificate), as made beside it.
    const mate = bad.field === 'cert' ? bad.file.replace(/\.crt$/, '.key') : bad.file.replace(/\.key$/, '.crt');
    await withTls(bad.field === 'cert' ? { cert: bad.file, key: existsSync(mate) ? mate : makeCert('good').key } : { cert: mate, key: bad.file });
    try {
      for (const args of [['--yes', 'sprint', '5'], ['plan', '5']]) {
        const r = await lab.cli(args);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stdout).toBe('');
        expect(r.stderr).not.toContain('This is a bug');
        expect(r.stderr).not.toMatch(/^\s+at /m);
        const lines = r.stderr.split('\n');
        expect(lines[0], r.stderr).toBe(`error: the operator's certificates in ${lab.config} cannot be used (1 problem):`);
        const issue = `  ${lab.config}:\\d+:\\d+: hosts\\[2\\]\\.tls\\.${bad.field}: `;
        expect(lines[1]).toMatch(new RegExp(`^${issue}`));
        expect(lines[1]).toContain(bad.file);
        expect(lines[1]).toMatch(bad.message);
        expect(r.stderr).toContain('Nothing was changed on any host.');
      }
      expect(await written()).toEqual([]);
    } finally {
      await writeFile(lab.config, inventoryText);
    }
  });

  it('a sound certificate passes the check: the run goes on to the sprint gate (sprint 4 has not run here)', async () => {
    await withTls(makeCert('sound'));
    try {
      const r = await lab.cli(['--yes', 'sprint', '5']);
      expect(r.stderr).not.toContain("operator's certificates");
      expect(r.stderr).toContain('sprint 4');
    } finally {
      await writeFile(lab.config, inventoryText);
    }
  });

  it('a certificate ending in 10 days is said, naming field, file and host, and not refused: the run goes on to the sprint gate', async () => {
    const short = makeCert('short', { days: 10 });
    await withTls(short);
    try {
      const r = await lab.cli(['--yes', 'sprint', '5']);
      expect(r.code).not.toBe(3);
      expect(r.stderr).toMatch(/tls\.cert \S+short\S* \(db2\) ends on \S+, in 9 days, and dpgc never renews an operator's certificate/);
      expect(r.stderr).toContain('sprint 4');
    } finally {
      await writeFile(lab.config, inventoryText);
    }
  });
});
