import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/config/load.js';

describe('per-host ssh settings', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('take what a host leaves out from defaults.ssh, not from the built-in defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dpgc-inv-'));
    dirs.push(dir);
    const file = join(dir, 'dpgc.yaml');
    await writeFile(
      file,
      [
        'cluster: main',
        'defaults:',
        '  ssh: { user: admin, port: 2222, connect_timeout_s: 5, sudo: true }',
        'hosts:',
        '  - { name: db1, address: 10.0.0.11, roles: [postgres, etcd] }',
        '  - { name: db2, address: 10.0.0.12, roles: [postgres, etcd], ssh: { port: 2200 } }',
        '  - { name: db3, address: 10.0.0.13, roles: [postgres, etcd], ssh: { user: ops } }',
        '',
      ].join('\n'),
    );
    const inv = await loadInventory(file);
    expect(inv.hosts.map((h) => [h.name, h.ssh.user, h.ssh.port, h.ssh.connect_timeout_s, h.ssh.sudo])).toEqual([
      ['db1', 'admin', 2222, 5, true],
      ['db2', 'admin', 2200, 5, true],
      ['db3', 'ops', 2222, 5, true],
    ]);
  });
});
