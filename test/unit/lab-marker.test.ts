import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInventory } from '../../src/config/load.js';
import type { Inventory } from '../../src/config/schema.js';
import { labDir } from '../../src/lab/lab.js';
import { labInventoryYaml } from '../../src/lab/inventory.js';
import { checkLabDirPath, claimDir, ownedBy, refuseForeign } from '../../src/lab/marker.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'dpgc-marker-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function inv(dir: string, edit: (yaml: string) => string = (y) => y): Inventory {
  const r = parseInventory(edit(labInventoryYaml({ dir, subnet: '127.0.120' })), '/x/dpgc.yaml');
  if (!r.inventory) throw new Error(JSON.stringify(r.issues));
  return r.inventory;
}

describe('where a lab may be', () => {
  it.each(['/', '/tmp', '/var/lib', '/usr/local/lab', '/etc/lab', homedir()])('refuses %s as a lab directory', (d) => {
    expect(() => checkLabDirPath(d)).toThrow(/system directory/);
  });

  it('accepts a new directory below /tmp', () => {
    expect(() => checkLabDirPath('/tmp/my-lab')).not.toThrow();
  });

  it('labDir is the common parent of clean roots, and refuses `..`, `/` and /tmp as that parent', () => {
    expect(labDir(inv('/srv/lab'))).toBe('/srv/lab');
    // The inventory schema already refuses `..`; labDir refuses it again for an inventory built another way.
    expect(() => inv('/srv/lab', (y) => y.replace('root: /srv/lab/db1', 'root: /srv/lab/../../db1'))).toThrow('a \\"..\\" segment is not allowed');
    const tampered = inv('/srv/lab');
    tampered.hosts[1]!.root = '/srv/lab/../../db1';
    expect(() => labDir(tampered)).toThrow('the root of lab host db1, "/srv/lab/../../db1", is unsafe: contains a `.` or `..` component');
    expect(() => labDir(inv('/tmp'))).toThrow(/refusing \/tmp as a lab directory/);
    expect(() => labDir(inv('/srv/lab', (y) => y.replace('root: /srv/lab/db1', 'root: /srv/other/db1')))).toThrow(/do not share one lab directory/);
  });
});

describe('what dpgc made', () => {
  it('claims a new or empty directory, and recognises it afterwards', async () => {
    const d = join(tmp, 'new');
    await claimDir(d, { dpgc: 'lab', inventory: '/x/dpgc.yaml', cluster: 'c' });
    expect(ownedBy(d, '/x/dpgc.yaml', 'lab')).toBe(true);
    expect(ownedBy(d, '/y/dpgc.yaml', 'lab')).toBe(false);
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    await claimDir(empty, { dpgc: 'lab', inventory: '/x/dpgc.yaml', cluster: 'c' });
    expect(ownedBy(empty, '/x/dpgc.yaml', 'lab')).toBe(true);
  });

  it('refuses a non-empty directory dpgc did not make, and another inventory\'s lab', async () => {
    const full = join(tmp, 'full');
    await mkdir(full);
    await writeFile(join(full, 'precious.txt'), 'keep me');
    expect(() => refuseForeign(full, '/x/dpgc.yaml')).toThrow(/exists, is not empty, and was not made by dpgc/);
    await expect(claimDir(full, { dpgc: 'lab', inventory: '/x/dpgc.yaml', cluster: 'c' })).rejects.toThrow(/not made by dpgc/);
    const other = join(tmp, 'other');
    await claimDir(other, { dpgc: 'lab', inventory: '/y/dpgc.yaml', cluster: 'c' });
    expect(() => refuseForeign(other, '/x/dpgc.yaml')).toThrow(/belongs to another dpgc lab \(inventory \/y\/dpgc\.yaml\)/);
  });
});
