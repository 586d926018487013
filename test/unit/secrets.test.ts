import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET_NAMES, Secrets, secretsPathFor } from '../../src/config/secrets.js';
import { ConfigError, ExitCode } from '../../src/errors.js';

/** Secrets against real files in a temporary directory. */

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-secrets-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const freshFile = () => join(dir, `s${++n}.secrets.yaml`);

async function refusal(p: Promise<unknown>): Promise<ConfigError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ConfigError);
  expect((e as ConfigError).exitCode).toBe(ExitCode.config);
  return e as ConfigError;
}

describe('the secrets file', () => {
  it('sits beside the inventory', () => {
    expect(secretsPathFor('/etc/dpgc/prod.yaml')).toBe('/etc/dpgc/prod.secrets.yaml');
    expect(secretsPathFor('/etc/dpgc/dpgc.yml')).toBe('/etc/dpgc/dpgc.secrets.yaml');
  });

  it('missing is fine: a secret is generated on first need, saved with mode 0600, and stable', async () => {
    const file = freshFile();
    const a = new Secrets(file, { env: {} });
    await a.check();
    const v = await a.get('replication');
    expect(v).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await a.get('replication')).toBe(v);
    expect(await new Secrets(file, { env: {} }).get('replication')).toBe(v);
  });

  it('tasks asking at once all get the same value, and every new secret is saved', async () => {
    const file = freshFile();
    const s = new Secrets(file, { env: {} });
    const same = await Promise.all([s.get('rewind'), s.get('rewind'), s.get('rewind')]);
    expect(new Set(same).size).toBe(1);
    const all = await Promise.all(SECRET_NAMES.map((name) => s.get(name)));
    const reread = new Secrets(file, { env: {} });
    expect(await Promise.all(SECRET_NAMES.map((name) => reread.get(name)))).toEqual(all);
  });

  it('under --dry-run a needed secret is generated but nothing is written', async () => {
    const file = freshFile();
    await new Secrets(file, { env: {}, dryRun: true }).get('monitoring');
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it.each([
    [0o644, '644'],
    [0o604, '604'],
    [0o640, '640'],
  ])('mode %s (readable by group or others) is refused with the chmod that fixes it', async (mode, shown) => {
    const file = freshFile();
    await writeFile(file, 'replication: abcdefghijklmnop\n');
    await chmod(file, mode);
    const e = await refusal(new Secrets(file, { env: {} }).check());
    expect(e.message).toBe(`secrets file ${file} is readable by group or others (mode ${shown}); dpgc refuses to use it`);
    expect(e.hint).toBe(`Run \`chmod 600 ${file}\`, and rotate the secrets if others could have read them.`);
  });

  it('an unknown name, a short value and a non-text value are reported with their lines, never their values', async () => {
    const file = freshFile();
    await writeFile(file, '# comment\nreplication: abcdefghijklmnop\nrewnd: abcdefghijklmnop\nmonitoring: hunter2\npatroni_rest: 123456789012345\n', { mode: 0o600 });
    const e = await refusal(new Secrets(file, { env: {} }).check());
    expect(e.message).toBe(
      `secrets file ${file} is not valid (3 problems):\n` +
        `  ${file}:3:1: rewnd: unknown secret "rewnd"; did you mean "rewind"? known secrets: ${SECRET_NAMES.join(', ')}\n` +
        `  ${file}:4:13: monitoring: the value is 7 characters long; a secret needs at least 12 characters. Delete the line and dpgc generates a strong one\n` +
        `  ${file}:5:15: patroni_rest: the value is not text (quote it); a secret needs at least 12 characters. Delete the line and dpgc generates a strong one`,
    );
    expect(e.message).not.toContain('hunter2');
    expect(e.message).not.toContain('abcdefghijklmnop');
  });

  it('broken YAML and a list are refused with a position', async () => {
    const a = freshFile();
    await writeFile(a, 'replication: "abcdefghijklmnop\n', { mode: 0o600 });
    expect((await refusal(new Secrets(a, { env: {} }).check())).issues.map((i) => [i.line, i.column, i.message])).toEqual([
      [2, 1, 'YAML syntax error: Missing closing "quote; close the quote or bracket that was opened before this point'],
    ]);
    const b = freshFile();
    await writeFile(b, '- abcdefghijklmnop\n', { mode: 0o600 });
    expect((await refusal(new Secrets(b, { env: {} }).check())).issues.map((i) => [i.line, i.column, i.message])).toEqual([[1, 1, 'expected a mapping of `name: value` lines']]);
  });
});

describe('DPGC_SECRET_<NAME> from the environment', () => {
  it('wins over the file, and nothing is written for it', async () => {
    const file = freshFile();
    await writeFile(file, 'replication: from-the-file-0001\n', { mode: 0o600 });
    const s = new Secrets(file, { env: { DPGC_SECRET_REPLICATION: 'from-the-environment' } });
    expect(await s.get('replication')).toBe('from-the-environment');
    expect(await readFile(file, 'utf8')).toBe('replication: from-the-file-0001\n');
  });

  it('a name dpgc does not know is refused, with the likely one', async () => {
    const e = await refusal(new Secrets(freshFile(), { env: { DPGC_SECRET_REPLICATON: 'abcdefghijklmnop' } }).get('replication'));
    expect(e.message).toBe('environment variable DPGC_SECRET_REPLICATON names no secret dpgc knows; did you mean DPGC_SECRET_REPLICATION?');
  });

  it('a short value is refused without printing it', async () => {
    const file = freshFile();
    const e = await refusal(new Secrets(file, { env: { DPGC_SECRET_MONITORING: 'hunter2' } }).check());
    expect(e.message).toBe('environment variable DPGC_SECRET_MONITORING is 7 characters long; a secret needs at least 12');
    expect(e.hint).toBe(`Use a longer value, or unset DPGC_SECRET_MONITORING to have dpgc generate one (saved in ${file}).`);
  });

  it('an empty value counts as unset', async () => {
    const s = new Secrets(freshFile(), { env: { DPGC_SECRET_MONITORING: '' } });
    expect(await s.get('monitoring')).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });
});
