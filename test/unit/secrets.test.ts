import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
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
    const generated = SECRET_NAMES.filter((name) => name !== 'grafana_admin');
    const all = await Promise.all(generated.map((name) => s.get(name)));
    const reread = new Secrets(file, { env: {} });
    expect(await Promise.all(generated.map((name) => reread.get(name)))).toEqual(all);
  });

  it("grafana_admin is the operator's (Grafana's own password): never generated, its absence named with the file", async () => {
    const file = freshFile();
    const e = await refusal(new Secrets(file, { env: {} }).get('grafana_admin'));
    expect(e.message).toContain(`neither ${file} has "grafana_admin" nor is DPGC_SECRET_GRAFANA_ADMIN set`);
    expect(e.hint).toContain("Grafana's admin password");
    await expect(stat(file)).rejects.toThrow();
    expect(await new Secrets(file, { env: { DPGC_SECRET_GRAFANA_ADMIN: 'a-password-grafana-has-1234' } }).get('grafana_admin')).toBe('a-password-grafana-has-1234');
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
        `  ${file}:3:1: rewnd: unknown secret "rewnd"; did you mean "rewind"? known secrets: ${SECRET_NAMES.join(', ')}, receiver_<name> for each alert receiver, and pending_<name> for a rotation under way\n` +
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

describe('only commands that set hosts up create secrets (issue 10)', () => {
  const HINT_START = 'Restore ';

  it('a read-only command with no secrets file is refused up front, naming the file and what to do, and creates nothing', async () => {
    const file = freshFile();
    const e = await refusal(new Secrets(file, { env: {}, mayCreate: false, command: 'dpgc verify' }).check());
    expect(e.message).toBe(`secrets file ${file} does not exist, and \`dpgc verify\` only reads secrets and never creates them`);
    expect(e.hint).toBe(
      `Restore ${file} from where you keep it (a backup, the machine that set the cluster up), or pass every secret as DPGC_SECRET_<NAME> ` +
        '(DPGC_SECRET_POSTGRES_SUPERUSER, DPGC_SECRET_REPLICATION, …). For a new cluster, `dpgc sprint 0` (or `dpgc up`) creates it.',
    );
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a setup command on a cluster that was set up before is refused too: new passwords would not match', async () => {
    const file = freshFile();
    const e = await refusal(new Secrets(file, { env: {}, mayCreate: true, clusterExists: { because: 'the cluster was already set up (x.state.json records its sprints)' } }).check());
    expect(e.message).toBe(`secrets file ${file} does not exist, and the cluster was already set up (x.state.json records its sprints), so new passwords would not match the ones it uses`);
    expect(e.hint?.startsWith(HINT_START)).toBe(true);
  });

  it('a read-only command reads an existing file, and never adds to it', async () => {
    const file = freshFile();
    await writeFile(file, 'replication: abcdefghijklmnop\n', { mode: 0o600 });
    const s = new Secrets(file, { env: {}, mayCreate: false, command: 'dpgc status' });
    await s.check();
    expect(await s.get('replication')).toBe('abcdefghijklmnop');
    const e = await refusal(s.get('monitoring'));
    expect(e.message).toBe(`DPGC_SECRET_MONITORING is not set and ${file} has no "monitoring"; \`dpgc status\` only reads secrets and never creates them`);
    expect(await readFile(file, 'utf8')).toBe('replication: abcdefghijklmnop\n');
  });

  it('secrets from the environment instead of a file: each one missing is named when needed', async () => {
    const file = freshFile();
    const s = new Secrets(file, { env: { DPGC_SECRET_REPLICATION: 'from-the-environment' }, mayCreate: false, command: 'dpgc verify' });
    await s.check();
    expect(await s.get('replication')).toBe('from-the-environment');
    const e = await refusal(s.get('rewind'));
    expect(e.message).toBe(`DPGC_SECRET_REWIND is not set and there is no secrets file (${file}); \`dpgc verify\` only reads secrets and never creates them`);
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a directory as the secrets file is named as one (not by its mode)', async () => {
    const file = freshFile();
    await mkdir(file, { mode: 0o755 });
    const e = await refusal(new Secrets(file, { env: {} }).check());
    expect(e.message).toBe(`secrets file ${file} is a directory, not a file`);
  });

  it('a FIFO is refused at once, not read (which would hang)', async () => {
    const file = freshFile();
    execFileSync('mkfifo', ['-m', '600', file]);
    const e = await refusal(new Secrets(file, { env: {} }).check());
    expect(e.message).toBe(`secrets file ${file} is not a regular file (a pipe, socket or device); dpgc refuses to read it`);
  });

  it.runIf(process.geteuid?.() === 0)('a file of mode 0600 owned by another user is refused', async () => {
    const file = freshFile();
    await writeFile(file, 'replication: abcdefghijklmnop\n', { mode: 0o600 });
    await chown(file, 65534, 65534);
    const e = await refusal(new Secrets(file, { env: {} }).check());
    expect(e.message).toBe(`secrets file ${file} belongs to uid 65534, not to the user running dpgc (uid 0); dpgc refuses it: its owner could change the passwords under you`);
    expect(e.hint).toBe(`If it is yours, run \`chown 0 ${file}\`; otherwise run dpgc as its owner.`);
  });
});

describe('a rotation in the secrets file', () => {
  it('records the new value as pending before anything else, gives the same value to a re-run, and makes it the secret only when completed', async () => {
    const file = freshFile();
    const a = new Secrets(file, { env: {} });
    const old = await a.get('app_user');
    const begun = await a.beginRotation('app_user');
    expect(begun.resumed).toBe(false);
    expect(begun.value).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(begun.value).not.toBe(old);
    // Saved at once: another process (a re-run after a kill) reads the same pending value, and the old secret is still in force.
    const b = new Secrets(file, { env: {} });
    expect(await b.get('app_user')).toBe(old);
    expect(await b.pending('app_user')).toBe(begun.value);
    expect(await b.pendingNames()).toEqual(['app_user']);
    expect(await b.beginRotation('app_user')).toEqual({ value: begun.value, resumed: true });
    await b.completeRotation('app_user');
    const c = new Secrets(file, { env: {} });
    expect(await c.get('app_user')).toBe(begun.value);
    expect(await c.pending('app_user')).toBeUndefined();
    expect(await readFile(file, 'utf8')).not.toContain(old);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('refuses to rotate a secret taken from the environment, naming the variable', async () => {
    const file = freshFile();
    await writeFile(file, `app_user: ${'a'.repeat(20)}\n`, { mode: 0o600 });
    const e = await refusal(new Secrets(file, { env: { DPGC_SECRET_APP_USER: 'b'.repeat(20) } }).beginRotation('app_user'));
    expect(e.message).toBe('DPGC_SECRET_APP_USER is set, so dpgc takes app_user from the environment and cannot rotate it');
  });

  it('a pending line for a name dpgc does not know is refused like any unknown secret', async () => {
    const file = freshFile();
    await writeFile(file, `pending_app_usr: ${'a'.repeat(20)}\npending_app_user: ${'b'.repeat(20)}\n`, { mode: 0o600 });
    const e = await refusal(new Secrets(file, { env: {} }).check());
    expect(e.message).toContain(`${file}:1:1: pending_app_usr: unknown secret "pending_app_usr"`);
    expect(e.message).not.toContain('pending_app_user:');
  });
});
