import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, dpgc } from '../helpers/cli.js';

/**
 * CLI smoke tests, run as processes: help and version, the one-JSON-document
 * contract of --json, and a fast start (`dpgc --help` loads no heavy adapter).
 */

const COMMANDS = ['init', 'sprint', 'plan', 'up', 'verify', 'status', 'pool-test', 'failover-test', 'backup', 'restore', 'rotate', 'readiness', 'report', 'schema', 'lab', 'help'];
const WITH_EXAMPLES = [...COMMANDS.filter((c) => c !== 'help'), 'lab init', 'lab up', 'lab down'];
const FIX = fileURLToPath(new URL('../fixtures/inventories/', import.meta.url));
const RECORDER = fileURLToPath(new URL('../helpers/record-modules.mjs', import.meta.url));

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'dpgc-cli-help-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('help', () => {
  it('`dpgc --help` lists every command, one line each, on stdout (`dpgc --help | less`)', async () => {
    const r = await dpgc(['--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const section = r.stdout.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
    const lines = section.split('\n');
    // A continuation line (a wrapped description) would start with more than two spaces.
    expect(lines.every((l) => /^ {2}\S/.test(l))).toBe(true);
    expect(lines.map((l) => l.trim().split(/\s+/)[0])).toEqual(COMMANDS);
    expect(r.stdout).toContain('Exit codes: 0 success, 1 criteria not met, 2 usage error, 3 configuration error,');
  });

  it.each(WITH_EXAMPLES)('`dpgc %s --help` shows its flags, the global flags and an example', async (cmd) => {
    const r = await dpgc([...cmd.split(' '), '--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`Usage: dpgc ${cmd} [options]`);
    expect(r.stdout).toContain('\nOptions:\n');
    expect(r.stdout).toContain('\nGlobal Options:\n  -V, --version');
    expect(r.stdout).toMatch(new RegExp(`\\nExamples?:\\n  dpgc ${cmd.split(' ')[0]}`));
  });

  it('`dpgc help sprint` is `dpgc sprint --help`', async () => {
    const [a, b] = await Promise.all([dpgc(['help', 'sprint']), dpgc(['sprint', '--help'])]);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toContain('Usage: dpgc sprint');
    expect(a.code).toBe(0);
  });

  it('`dpgc --version` prints the package version', async () => {
    const pkg = JSON.parse(await readFile(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
    const r = await dpgc(['--version']);
    expect(r.stdout).toBe(pkg.version);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('--json: exactly one JSON document on stdout, humans on stderr', () => {
  it('on success', async () => {
    const inv = join(tmp, 'lab.yaml');
    const r = await dpgc(['--json', '-c', inv, 'lab', 'init', '--dir', join(tmp, 'lab')]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ inventory: inv });
    expect(r.stderr).toContain(`Wrote lab inventory ${inv}`);
  });

  it('a configuration error becomes the document, with its positions', async () => {
    const file = join(FIX, 'duplicate-address.yaml');
    const r = await dpgc(['--json', '-c', file, 'verify']);
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout) as { ok: boolean; exitCode: number; error: { type: string; issues: unknown[] } };
    expect(doc).toMatchObject({ ok: false, exitCode: 3, error: { type: 'ConfigError' } });
    expect(doc.error.issues).toEqual([
      {
        file,
        line: 7,
        column: 14,
        path: 'hosts[1].address',
        message: 'address 127.0.0.91 is already used by hosts[0] (db1); every host needs its own address',
      },
    ]);
    expect(r.stderr).toContain('error: ');
  });

  it('a usage error becomes the document', async () => {
    const r = await dpgc(['--json', 'sprint', '9']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false,
      exitCode: 2,
      error: { type: 'UsageError', message: 'there is no sprint 9: sprints are numbered 0 to 5', hint: 'Run `dpgc sprint --help` for what each sprint delivers.' },
    });
  });

  it('`dpgc rotate` without a role, or with a secret it does not rotate, is a usage error that says why, before any host is asked', async () => {
    const none = await dpgc(['--json', 'rotate']);
    expect(none.code).toBe(2);
    expect((JSON.parse(none.stdout) as { error: { message: string } }).error.message).toBe('say what to rotate: --role NAME (repeatable), --all, or --certs');
    const cipher = await dpgc(['rotate', '--role', 'pgbackrest_cipher']);
    expect(cipher.code).toBe(2);
    expect(cipher.stderr).toContain('pgbackrest_cipher is not rotated by dpgc: the backup repository');
  });

  it('`dpgc schema` prints the JSON Schema on stdout', async () => {
    const r = await dpgc(['schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { properties: Record<string, unknown>; required: string[] };
    expect(schema.properties['hosts']).toBeDefined();
    expect(schema.required).toEqual(['cluster', 'hosts']);
  });
});

describe('start-up', () => {
  async function loadedModules(args: string[]): Promise<string[]> {
    const log = join(tmp, `modules-${args.join('-').replace(/\W+/g, '_')}.log`);
    await execa('node', ['--import', RECORDER, BIN, ...args], { reject: false, env: { CI: 'true', DPGC_MODULE_LOG: log }, stdin: 'ignore' });
    return (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  }
  const packages = (mods: string[]) => new Set(mods.flatMap((m) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m)?.[1] ?? []));

  it('`dpgc --help` loads neither ssh2, pg, etcd3 nor listr2', async () => {
    const pkgs = packages(await loadedModules(['--help']));
    expect(pkgs.has('commander')).toBe(true);
    for (const heavy of ['ssh2', 'pg', 'etcd3', 'listr2']) expect(pkgs.has(heavy), heavy).toBe(false);
  });

  it('the recorder does see a heavy package when a command loads one', async () => {
    // `sprint 2` loads the task runner (listr2) before it refuses the inventory.
    const pkgs = packages(await loadedModules(['-c', join(FIX, 'no-etcd.yaml'), 'sprint', '2']));
    expect(pkgs.has('listr2')).toBe(true);
  });

  it('median start time of `dpgc --help` over 10 runs (reported)', async () => {
    // Interleaved with a bare `node -e 0`, so a busy machine slows both alike.
    const help: number[] = [];
    const bare: number[] = [];
    const time = async (args: string[], into: number[]) => {
      const t = performance.now();
      await execa('node', args, { reject: false, stdin: 'ignore' });
      into.push(performance.now() - t);
    };
    for (let i = 0; i < 10; i++) {
      await time([BIN, '--help'], help);
      await time(['-e', '0'], bare);
    }
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    console.log(`dpgc --help: median ${median(help).toFixed(0)} ms; bare \`node -e 0\`: median ${median(bare).toFixed(0)} ms`);
    expect(median(help)).toBeLessThan(median(bare) + 1000);
  });
});
