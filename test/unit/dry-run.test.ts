import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalHost } from '../../src/hosts/local.js';
import { recordingWould } from '../../src/hosts/observation.js';
import type { Logger } from '../../src/output/log.js';

/**
 * The --dry-run contract, decided once in the transport (src/hosts/base.ts):
 * a mutating command or file write is printed, not done; read-only commands
 * (`mutates: false`) still run, so a dry run can tell what would change.
 */

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-dry-run-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function dryHost(): { host: LocalHost; printed: string[] } {
  const printed: string[] = [];
  const logger: Logger = { info() {}, warn() {}, error() {}, debug() {}, dry: (m) => printed.push(`[dry-run] ${m}`) };
  return { host: new LocalHost({ name: 'db1', address: '127.0.0.1', dryRun: true, logger }), printed };
}

describe('--dry-run on a host', () => {
  it('a mutating command is printed with its host and user, and not run', async () => {
    const { host, printed } = dryHost();
    const marker = join(dir, 'touched');
    const r = await host.exec(['touch', marker], { user: 'postgres' });
    expect(r).toEqual({ stdout: '', stderr: '', exitCode: 0, durationMs: 0, skipped: true });
    expect(printed).toEqual([`[dry-run] db1: would run \`touch ${marker}\` as postgres`]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a read-only command runs', async () => {
    const { host, printed } = dryHost();
    const r = await host.exec(['echo', 'measured'], { mutates: false });
    expect(r.stdout).toBe('measured\n');
    expect(r.skipped).toBeUndefined();
    expect(printed).toEqual([]);
  });

  it('a file write is printed with path, mode, owner and size, and not written', async () => {
    const { host, printed } = dryHost();
    const path = join(dir, 'etc', 'app.conf');
    const change = await host.writeFile(path, 'listen = 5432\n', { mode: 0o640, owner: 'root' });
    expect(change).toEqual({ path, changed: true });
    // Mode 0640 may guard a secret: its content never reaches the output.
    expect(printed).toEqual([`[dry-run] db1: would write ${path} (mode 640, root:root, 14 bytes)\n(content not shown: the file is not readable by every user)`]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a file every user may read is shown as a unified diff against what is there, and recorded for the plan', async () => {
    const { host, printed } = dryHost();
    const path = join(dir, 'public.conf');
    await writeFile(path, 'a = 1\nb = 2\n');
    const { value, would } = await recordingWould(() => host.writeFile(path, 'a = 1\nb = 3\n', { mode: 0o644 }));
    expect(value.changed).toBe(true);
    expect(would).toHaveLength(1);
    expect(would[0]).toContain(`write ${path} (mode 644, root:root, 12 bytes)\n--- ${path} (now)\n+++ ${path} (dpgc)\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n+b = 3`);
    expect(printed[0]).toBe(`[dry-run] db1: would ${would[0]}`);
    expect(await readFile(path, 'utf8')).toBe('a = 1\nb = 2\n');
    await rm(path);
  });

  it('a new file every user may read is shown whole', async () => {
    const { host } = dryHost();
    const path = join(dir, 'new.conf');
    const { would } = await recordingWould(() => host.writeFile(path, 'x = 1\n', { mode: 0o644 }));
    expect(would[0]).toContain('@@ -0,0 +1 @@\n+x = 1');
    expect(await readdir(dir)).toEqual([]);
  });

  it('reading a file still works', async () => {
    const { host } = dryHost();
    expect(await host.readFile(join(dir, 'missing'))).toBeUndefined();
  });
});
