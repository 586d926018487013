import { describe, expect, it } from 'vitest';
import { parseHostFacts } from '../../src/components/preflight.js';
import { autoConfSettings, sameSetting, settingsDrift, sizedParameters, withoutAutoSettings, type SettingRow } from '../../src/components/sizing.js';
import { inventorySchema } from '../../src/config/schema.js';
import { DEFAULT_EF_SEARCH, efSearch, SIZED_NAMES, sizePostgres, sizingBasis, type HostFacts, type SizingProfile } from '../../src/config/sizing.js';

const GiB = 1024 ** 3;

function size(facts: HostFacts, profile: SizingProfile = 'vector', settings: Record<string, string | number | boolean> = {}, maxConnections = 200) {
  const s = sizePostgres(sizingBasis([{ name: 'db1', facts }]), { profile, maxConnections, settings });
  return { s, v: (n: string) => s.settings.find((x) => x.name === n)?.value, src: (n: string) => s.settings.find((x) => x.name === n)?.source };
}

describe('sizing arithmetic', () => {
  it('a small host (2 GB): a quarter for shared_buffers, work_mem spread over every connection', () => {
    const { v, s } = size({ memoryBytes: 2 * GiB, cpus: 2, rotational: true });
    expect(s.settings.map((x) => x.name)).toEqual([...SIZED_NAMES]);
    expect(v('shared_buffers')).toBe('512MB');
    expect(v('effective_cache_size')).toBe('1536MB');
    expect(v('work_mem')).toBe('2MB'); // (2048 - 512) MB / 600
    expect(v('maintenance_work_mem')).toBe('256MB');
    expect(v('max_parallel_maintenance_workers')).toBe(1);
    expect(v('max_wal_size')).toBe('4GB');
    expect(v('random_page_cost')).toBe(4);
    expect(v('effective_io_concurrency')).toBe(2);
    expect(v('huge_pages')).toBe('try');
    // The small profile leaves more of a small host to its other services.
    const small = size({ memoryBytes: 2 * GiB, cpus: 2, rotational: true }, 'small');
    expect(small.v('shared_buffers')).toBe('256MB');
    expect(small.v('effective_cache_size')).toBe('1GB');
    expect(small.v('maintenance_work_mem')).toBe('64MB');
    expect(small.v('max_wal_size')).toBe('1GB');
    expect(small.v('min_wal_size')).toBe('80MB');
  });

  it('a medium host (16 GB, 8 CPUs, SSD): vector builds get more memory and workers than oltp', () => {
    const f = { memoryBytes: 16 * GiB, cpus: 8, rotational: false };
    const vec = size(f, 'vector');
    expect(vec.v('shared_buffers')).toBe('4GB');
    expect(vec.v('effective_cache_size')).toBe('12GB');
    expect(vec.v('work_mem')).toBe('20MB');
    expect(vec.v('maintenance_work_mem')).toBe('2GB');
    expect(vec.v('max_parallel_maintenance_workers')).toBe(7);
    expect(vec.v('max_wal_size')).toBe('16GB');
    expect(vec.v('min_wal_size')).toBe('2GB');
    expect(vec.v('random_page_cost')).toBe(1.1);
    expect(vec.v('effective_io_concurrency')).toBe(200);
    const oltp = size(f, 'oltp');
    expect(oltp.v('shared_buffers')).toBe('4GB');
    expect(oltp.v('maintenance_work_mem')).toBe('1GB');
    expect(oltp.v('max_parallel_maintenance_workers')).toBe(4);
    expect(oltp.v('max_wal_size')).toBe('8GB');
    expect(oltp.v('min_wal_size')).toBe('1GB');
  });

  it('a large host (256 GB, 64 CPUs): caps on work_mem, maintenance_work_mem and workers', () => {
    const { v } = size({ memoryBytes: 256 * GiB, cpus: 64, rotational: false });
    expect(v('shared_buffers')).toBe('64GB');
    expect(v('effective_cache_size')).toBe('192GB');
    expect(v('work_mem')).toBe('327MB');
    expect(v('maintenance_work_mem')).toBe('8GB');
    expect(v('max_parallel_maintenance_workers')).toBe(8);
    expect(size({ memoryBytes: 256 * GiB, cpus: 64, rotational: false }, 'oltp', {}, 20).v('work_mem')).toBe('512MB');
  });

  it('the lab: three postgres hosts on one machine (24 GiB, 2 cores) divide its memory, not its CPUs', () => {
    const text = 'mem 24683548\nhuge 0\ncpus 2\nboot a7be9580-5222-4951-81f9-8e72a96b0b46\nrot dev 1\n';
    const facts = parseHostFacts(text);
    expect(facts).toEqual({ memoryBytes: 24683548 * 1024, cpus: 2, rotational: true, machine: 'a7be9580-5222-4951-81f9-8e72a96b0b46', hugePagesTotal: 0 });
    const basis = sizingBasis(['db1', 'db2', 'db3'].map((name) => ({ name, facts })));
    expect(basis.sharedBy).toBe(3);
    expect(basis.memoryBytes).toBe(Math.floor((24683548 * 1024) / 3));
    expect(basis.cpus).toBe(2);
    expect(basis.ssd).toBe(false);
    const s = sizePostgres(basis, { profile: 'vector', maxConnections: 200, settings: {} });
    const v = (n: string) => s.settings.find((x) => x.name === n)!;
    expect(v('shared_buffers').value).toBe('2008MB');
    expect(v('shared_buffers').why).toBe("25% of 7.8 GiB (db1's memory / 3 postgres hosts on one machine)");
    expect(v('effective_cache_size').value).toBe('6026MB');
    expect(v('work_mem').value).toBe('10MB');
    expect(v('maintenance_work_mem').value).toBe('1004MB');
    expect(v('max_parallel_maintenance_workers').value).toBe(1);
    // Real hosts (different boot ids) are each sized on their own memory; the cluster on the smallest.
    const mixed = sizingBasis([
      { name: 'db1', facts: { memoryBytes: 64 * GiB, cpus: 16, rotational: false, machine: 'a' } },
      { name: 'db2', facts: { memoryBytes: 32 * GiB, cpus: 8, rotational: false, machine: 'b' } },
      { name: 'db3', facts: { memoryBytes: 64 * GiB, cpus: 16, rotational: undefined, machine: 'c' } },
    ]);
    expect(mixed).toMatchObject({ memoryBytes: 32 * GiB, cpus: 8, from: 'db2', sharedBy: 1, ssd: false });
    expect(mixed.storage).toMatch(/unknown on db3/);
    expect(sizingBasis([{ name: 'db1', facts }], 'ssd').ssd).toBe(true);
  });

  it('explicit postgres.settings win, and every value says where it came from', () => {
    const { s, v, src } = size({ memoryBytes: 16 * GiB, cpus: 8, rotational: false }, 'vector', { shared_buffers: '1GB', jit: false });
    expect(v('shared_buffers')).toBe('1GB');
    expect(src('shared_buffers')).toBe('inventory');
    expect(s.settings.find((x) => x.name === 'shared_buffers')!.why).toContain('dpgc would use 4GB');
    expect(src('effective_cache_size')).toBe('profile');
    expect(src('huge_pages')).toBe('default');
    expect(v('jit')).toBe(false);
    expect(sizedParameters(s)['jit']).toBe('off');
  });

  it('hnsw.ef_search: postgres.settings, then postgres.hnsw_ef_search, then the benchmark default', () => {
    expect(efSearch({ settings: {} })).toMatchObject({ value: DEFAULT_EF_SEARCH, source: 'default' });
    expect(efSearch({ hnsw_ef_search: 100, settings: {} })).toMatchObject({ value: 100, source: 'inventory' });
    expect(efSearch({ hnsw_ef_search: 100, settings: { 'hnsw.ef_search': 40 } }, 'hnsw.ef_search')).toMatchObject({ value: 40, source: 'inventory' });
  });

  it('refuses an unknown profile naming the field and the choices', () => {
    const r = inventorySchema.safeParse({ cluster: 'c', postgres: { profile: 'olap' }, hosts: [{ name: 'db1', address: '10.0.0.1', roles: ['postgres'] }] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['postgres', 'profile']);
    expect(r.error!.issues[0]!.message).toBe('expected one of oltp, vector, small (how PostgreSQL is sized to its host), got the text "olap"');
    const ef = inventorySchema.safeParse({ cluster: 'c', postgres: { hnsw_ef_search: 0 }, hosts: [{ name: 'db1', address: '10.0.0.1', roles: ['postgres'] }] });
    expect(ef.success).toBe(false);
    expect(ef.error!.issues[0]!.path).toEqual(['postgres', 'hnsw_ef_search']);
  });
});

describe('host facts', () => {
  it('falls back to every real disk when the data directory has no block device of its own', () => {
    expect(parseHostFacts('mem 1000\ncpus 4\nrot disk vda 0\nrot disk vdb 0').rotational).toBe(false);
    expect(parseHostFacts('mem 1000\ncpus 4\nrot disk vda 0\nrot disk sdb 1').rotational).toBe(true);
    expect(parseHostFacts('mem 1000\ncpus 4').rotational).toBeUndefined();
    expect(parseHostFacts('cpus x').memoryBytes).toBe(0);
  });
});

describe('settings in force against what dpgc computed', () => {
  const row = (setting: string, unit: string | null, vartype = 'integer'): Pick<SettingRow, 'setting' | 'unit' | 'vartype'> => ({ setting, unit, vartype });
  it('normalises units the way pg_settings reports them', () => {
    expect(sameSetting(row('256768', '8kB'), '2006MB')).toBe(true); // shared_buffers in 8 kB pages
    expect(sameSetting(row('16384', '8kB'), '128MB')).toBe(true);
    expect(sameSetting(row('16384', '8kB'), '2006MB')).toBe(false);
    expect(sameSetting(row('10240', 'kB'), '10MB')).toBe(true); // work_mem
    expect(sameSetting(row('4096', 'MB'), '4GB')).toBe(true); // max_wal_size
    expect(sameSetting(row('4096', 'kB'), 4096)).toBe(true); // a bare number is in the setting's unit
    expect(sameSetting(row('30000', 'ms'), '30s')).toBe(true);
    expect(sameSetting(row('1.1', null, 'real'), 1.1)).toBe(true);
    expect(sameSetting(row('4', null, 'real'), 1.1)).toBe(false);
    expect(sameSetting(row('on', null, 'bool'), true)).toBe(true);
    expect(sameSetting(row('off', null, 'bool'), 'false')).toBe(true);
    expect(sameSetting(row('lz4', null, 'enum'), 'lz4')).toBe(true);
    expect(sameSetting(row('try', null, 'enum'), "'try'")).toBe(true);
    expect(sameSetting(row('pglz', null, 'enum'), 'lz4')).toBe(false);
  });

  it('names each setting that differs, and says when the right value only waits for a restart', () => {
    const rows: SettingRow[] = [
      { name: 'work_mem', setting: '1024', unit: 'kB', vartype: 'integer', pending_restart: false, shown: '1MB' },
      { name: 'shared_buffers', setting: '16384', unit: '8kB', vartype: 'integer', pending_restart: true, shown: '128MB' },
      { name: 'huge_pages', setting: 'try', unit: null, vartype: 'enum', pending_restart: false, shown: 'try' },
    ];
    const d = settingsDrift(rows, [
      { name: 'work_mem', value: '10MB', source: 'profile', why: '' },
      { name: 'shared_buffers', value: '2006MB', source: 'profile', why: '' },
      { name: 'huge_pages', value: 'try', source: 'default', why: '' },
      { name: 'nosuch.thing', value: 'x', source: 'inventory', why: '' },
    ]);
    expect(d).toEqual([
      { name: 'work_mem', want: '10MB', have: '1MB', source: 'profile', pendingRestart: false },
      { name: 'shared_buffers', want: '2006MB', have: '128MB', source: 'profile', pendingRestart: true },
      { name: 'nosuch.thing', want: 'x', have: '(unknown to the server)', source: 'inventory', pendingRestart: false },
    ]);
  });

  it('drops ALTER SYSTEM lines of dpgc\'s settings only', () => {
    const auto = "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\nwork_mem = '1MB'\nlog_min_duration_statement = '250ms'\nshared_buffers = '64MB'\n";
    const r = withoutAutoSettings(auto, ['work_mem', 'shared_buffers']);
    expect(r.removed).toEqual(['work_mem', 'shared_buffers']);
    expect(r.text).toBe("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\nlog_min_duration_statement = '250ms'\n");
    expect(withoutAutoSettings(r.text, ['work_mem']).removed).toEqual([]);
  });
});

describe('ALTER SYSTEM values (postgresql.auto.conf)', () => {
  it('names each setting once, lowercase, comments left out; withoutAutoSettings then drops them all', () => {
    const auto = "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\ntcp_keepalives_idle = '300'\nWork_Mem = '8MB'\n#shared_buffers = '1GB'\nwork_mem = '9MB'\n";
    expect(autoConfSettings(auto)).toEqual(['tcp_keepalives_idle', 'work_mem']);
    expect(autoConfSettings(withoutAutoSettings(auto, autoConfSettings(auto)).text)).toEqual([]);
    expect(autoConfSettings('')).toEqual([]);
  });
});
