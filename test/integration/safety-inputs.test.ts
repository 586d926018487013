import { existsSync } from 'node:fs';
import { chmod, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { SECRET_NAMES, secretsPathFor } from '../../src/config/secrets.js';
import { statePathFor } from '../../src/state.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * Issue 10, findings 2, 4 and 6, reproduced on a lab inventory of its own
 * (127.0.110.x; `lab init` only: no daemon is started, so every command here
 * either is refused before it touches a host or measures a cluster that is
 * not running). Each case asserts the refusal (exit code and message, no
 * stack trace) and that nothing changed on disk.
 */

let lab: TestLab;
let secrets: string;
let state: string;
let inventoryText: string;
beforeAll(async () => {
  lab = await createLab('127.0.110');
  secrets = secretsPathFor(lab.config);
  state = statePathFor(lab.config);
  inventoryText = await readFile(lab.config, 'utf8');
}, 60_000);
afterAll(async () => {
  await lab?.down();
});

const BUG = 'This is a bug in dpgc';
const labDir = () => `${lab.dir}/lab`;
/** What is under the lab directory besides the markers `lab init` leaves there: what a run would have written. */
const written = async (): Promise<string[]> => {
  if (!existsSync(labDir())) return [];
  const all = await readdir(labDir(), { recursive: true, withFileTypes: true });
  return all.filter((e) => !e.isDirectory() && e.name !== '.dpgc-lab').map((e) => join(e.parentPath, e.name));
};

async function writeAllSecrets(): Promise<void> {
  await writeFile(secrets, SECRET_NAMES.map((n) => `${n}: not-a-real-password-${n}\n`).join(''), { mode: 0o600 });
  await chmod(secrets, 0o600);
}

describe('#4 read-only commands never create secrets', () => {
  const hint = () =>
    `Restore ${secrets} from where you keep it (a backup, the machine that set the cluster up), or pass every secret as DPGC_SECRET_<NAME> ` +
    '(DPGC_SECRET_POSTGRES_SUPERUSER, DPGC_SECRET_REPLICATION, …). For a new cluster, `dpgc sprint 0` (or `dpgc up`) creates it.';

  it.each([['verify'], ['status'], ['pool-test', '--duration', '1s'], ['failover-test', '--mode', 'switchover']])(
    'dpgc %s with the secrets file gone: exit 3, names the file and what to do, creates nothing',
    async (...args) => {
      await rm(secrets, { force: true });
      const before = await readdir(lab.dir);
      const r = await lab.cli(args);
      expect(r.stderr).toBe(`error: secrets file ${secrets} does not exist, and \`dpgc ${args[0]}\` only reads secrets and never creates them\n${hint()}`);
      expect(r.code).toBe(3);
      expect(r.stdout).toBe('');
      expect(existsSync(secrets)).toBe(false);
      expect(await readdir(lab.dir)).toEqual(before);
    },
  );

  it('--json: the refusal is the one JSON document', async () => {
    const r = await lab.cli(['--json', 'verify']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, exitCode: 3, error: { type: 'ConfigError', message: expect.stringContaining(`secrets file ${secrets} does not exist`) } });
    expect(existsSync(secrets)).toBe(false);
  });

  it('a sprint on a cluster that was set up (its state file exists) will not make new passwords either', async () => {
    await writeFile(state, JSON.stringify({ sprints: { '0': { at: '2026-12-02T04:00:00Z', inventoryHash: 'x', passed: true, results: [] } } }));
    try {
      const r = await lab.cli(['sprint', '1']);
      expect(r.stderr).toBe(
        `error: secrets file ${secrets} does not exist, and the cluster was already set up (${state} records its sprints), so new passwords would not match the ones it uses\n${hint()}`,
      );
      expect(r.code).toBe(3);
      expect(existsSync(secrets)).toBe(false);
      expect(await written()).toEqual([]);
    } finally {
      await rm(state, { force: true });
    }
  });

  it('a secrets file of mode 0600 owned by another user is refused', async () => {
    await writeAllSecrets();
    const { chown } = await import('node:fs/promises');
    await chown(secrets, 65534, 65534);
    try {
      const r = await lab.cli(['verify']);
      expect(r.stderr).toBe(
        `error: secrets file ${secrets} belongs to uid 65534, not to the user running dpgc (uid 0); dpgc refuses it: its owner could change the passwords under you\n` +
          `If it is yours, run \`chown 0 ${secrets}\`; otherwise run dpgc as its owner.`,
      );
      expect(r.code).toBe(3);
    } finally {
      await rm(secrets, { force: true });
    }
  });
});

describe('#2 a value that would reach a shell or a config file is refused before any host is touched', () => {
  const marker = '/tmp/dpgc-safety-inputs-ran';

  it('a root holding $(…), and a setting with a newline: exit 3 at their lines, nothing run, nothing written', async () => {
    const doc = parseDocument(inventoryText);
    doc.setIn(['hosts', 1, 'root'], `${labDir()}/db1/$(touch ${marker})`);
    doc.setIn(['postgres'], { settings: { application_name: "x\narchive_command = 'touch /tmp/dpgc-safety-inputs-ran'" } });
    await writeFile(lab.config, doc.toString());
    await rm(marker, { force: true });
    try {
      for (const args of [['sprint', '0'], ['--dry-run', 'sprint', '0'], ['verify']]) {
        const r = await lab.cli(args);
        expect(r.code).toBe(3);
        expect(r.stdout).toBe('');
        expect(r.stderr).not.toContain(BUG);
        const lines = r.stderr.split('\n');
        expect(lines[0]).toBe(`error: ${lab.config} is not a valid inventory (2 problems):`);
        const setting = lines.find((l) => l.includes('postgres.settings.application_name'));
        expect(setting).toMatch(
          new RegExp(
            `^  ${lab.config}:\\d+:\\d+: postgres\\.settings\\.application_name: expected a value on one line, without control characters, got the text "x\\\\narchive_command = 'touch /tmp/dpgc-safety-inputs-ran'"$`,
          ),
        );
        const root = lines.find((l) => l.includes('hosts[1].root'));
        expect(root).toMatch(new RegExp(`^  ${lab.config}:\\d+:\\d+: hosts\\[1\\]\\.root: `));
        expect(root).toContain(`expected an absolute path such as /srv/dpgc, got the text "${labDir()}/db1/$(touch ${marker})": "$", "(", " ", ")" are not allowed`);
      }
      expect(existsSync(marker)).toBe(false);
      expect(await written()).toEqual([]);
      expect(existsSync(secrets)).toBe(false);
    } finally {
      await writeFile(lab.config, inventoryText);
    }
  });
});

describe('#6 a corrupt state file is reported and ignored, never trusted and never a crash', () => {
  beforeAll(writeAllSecrets);
  afterAll(async () => {
    await rm(state, { force: true });
    await rm(secrets, { force: true });
  });

  const CASES: [string, string][] = [
    ['null', 'is not a dpgc state file (Invalid input: expected object, received null)'],
    ['[]', 'is not a dpgc state file (Invalid input: expected object, received array)'],
    ['{"sprints":null}', 'is not a dpgc state file (sprints: Invalid input: expected record, received null)'],
    // It once made verify measure nothing and say "All 0 checks pass".
    ['{"sprints":{"abc":{}}}', 'is not a dpgc state file (sprints.abc: "abc" is not a sprint number (0 to 5))'],
    ['{"sprints": {', "is not JSON (Expected property name or '}' in JSON at position 13)"],
  ];

  it('verify warns, naming the file and what is wrong, and measures every sprint on the live cluster', async () => {
    // One at a time: each run reads the one state file (verify against a stopped lab takes ~10 s).
    for (const [text, problem] of CASES) {
      await writeFile(state, text);
      const r = await lab.cli(['verify'], { timeoutMs: 120_000 });
      const lines = r.stderr.split('\n');
      expect(lines[0]).toBe(`warning: ${`state file ${state} ${problem}`}; ignoring it (dpgc measures the live cluster instead, and the next sprint run writes a new one)`);
      expect(r.stderr).not.toContain(BUG);
      expect(r.stderr).not.toContain('All 0 checks pass');
      // Nothing runs on this lab, so the live cluster fails its criteria: exit 1, every implemented sprint measured.
      for (const s of [0, 1, 2, 3]) expect(r.stderr).toContain(`\nSprint ${s}: `);
      expect(r.code).toBe(1);
      expect(await readFile(state, 'utf8')).toBe(text);
    }
  }, 300_000);
});
