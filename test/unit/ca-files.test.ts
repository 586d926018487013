import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caPathsFor, checkCaFiles, type CaPaths } from '../../src/components/ca.js';
import { ConfigError } from '../../src/errors.js';

/** The CA files on the control machine, checked before any host is touched (cli/setup.ts). */
describe('checkCaFiles', () => {
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dpgc-ca-files-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  async function ca(subject: string, o: { days?: number; leaf?: boolean } = {}): Promise<CaPaths> {
    const p = caPathsFor(join(dir, `c${++n}.yaml`));
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p.key);
    await chmod(p.key, 0o600);
    const constraints = o.leaf ? 'basicConstraints=critical,CA:FALSE' : 'basicConstraints=critical,CA:TRUE';
    ossl('req', '-x509', '-new', '-key', p.key, '-sha256', '-days', String(o.days ?? 30), '-subj', subject, '-addext', constraints, '-out', p.cert);
    return p;
  }
  const OURS = '/O=dpgc/CN=dpgc prod CA';
  const THEIRS = '/O=Example Corp/CN=Example Issuing CA';
  async function refusal(p: CaPaths, now?: Date): Promise<ConfigError> {
    const e = await checkCaFiles(p, 'prod', now).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }

  it('passes when there is no CA yet (the sprint that needs one makes it), and a sound one of either kind', async () => {
    await expect(checkCaFiles(caPathsFor(join(dir, 'none.yaml')), 'prod')).resolves.toBeUndefined();
    await expect(checkCaFiles(await ca(OURS), 'prod')).resolves.toBeUndefined();
    await expect(checkCaFiles(await ca(THEIRS), 'prod')).resolves.toBeUndefined();
  });

  it('refuses a key that group or others can read, naming it and what to do', async () => {
    const p = await ca(OURS);
    await chmod(p.key, 0o644);
    const e = await refusal(p);
    expect(e.message).toBe(`the cluster CA's key ${p.key} is readable by group or others (mode 644); dpgc refuses to use it`);
    expect(e.hint).toContain(`chmod 600 ${p.key}`);
    expect(e.hint).toContain('treat the CA as exposed');
  });

  it('refuses a key that does not belong to the certificate beside it', async () => {
    const p = await ca(THEIRS);
    const other = await ca(THEIRS);
    await rename(other.key, p.key);
    expect((await refusal(p)).message).toBe(`the cluster CA's key ${p.key} does not belong to its certificate ${p.cert}`);
  });

  it('refuses a certificate that is not a CA, and one that is not PEM', async () => {
    expect((await refusal(await ca(THEIRS, { leaf: true }))).message).toMatch(/is not a CA certificate \(basicConstraints CA:TRUE is missing\)$/);
    const p = await ca(THEIRS);
    execFileSync('sh', ['-c', 'echo junk > "$1"', 'sh', p.cert]);
    expect((await refusal(p)).message).toBe(`${p.cert} is not a PEM certificate`);
  });

  it('refuses an encrypted key: openssl signs without a passphrase', async () => {
    const p = await ca(THEIRS);
    ossl('pkey', '-in', p.key, '-aes256', '-passout', 'pass:not-a-real-one', '-out', `${p.key}.enc`);
    await rename(`${p.key}.enc`, p.key);
    await chmod(p.key, 0o600);
    expect((await refusal(p)).message).toMatch(/cannot be read as an unencrypted private key/);
  });

  it("refuses an operator's CA past its end, and their certificate without its key; dpgc's own it renews or remakes", async () => {
    const later = new Date(Date.now() + 60 * 86_400_000);
    const theirs = await ca(THEIRS);
    expect((await refusal(theirs, later)).message).toMatch(new RegExp(`^the cluster CA's certificate ${theirs.cert} \\(your own CA\\) expired on \\d{4}-\\d\\d-\\d\\d$`));
    await rm(theirs.key);
    expect((await refusal(theirs)).message).toBe(`the CA certificate ${theirs.cert} has no key beside it (${theirs.key})`);
    const ours = await ca(OURS);
    await expect(checkCaFiles(ours, 'prod', later)).resolves.toBeUndefined();
    await rm(ours.key);
    await expect(checkCaFiles(ours, 'prod')).resolves.toBeUndefined();
  });
});
