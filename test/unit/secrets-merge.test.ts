import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Secrets } from '../../src/config/secrets.js';

describe('Secrets shared by two processes', () => {
  it('a long-lived reader picks up a secret another process generated, instead of overwriting it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'dpgc-secrets-')), 'inv.secrets.yaml');
    onTestFinished(() => rmSync(dirname(file), { recursive: true, force: true }));
    const env = {};
    const longLived = new Secrets(file, { env });
    const su = await longLived.get('postgres_superuser');
    const cli = new Secrets(file, { env });
    const rest = await cli.get('patroni_rest');
    expect(await longLived.get('patroni_rest')).toBe(rest);
    const fresh = new Secrets(file, { env });
    expect(await fresh.get('patroni_rest')).toBe(rest);
    expect(await fresh.get('postgres_superuser')).toBe(su);
  });
});
