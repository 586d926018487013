import { describe, expect, it } from 'vitest';
import { EmbeddingDimensionError, searchSql } from '../../src/app/memory.js';
import { cosine, embeddingGenerator, mulberry32, recallAtK } from '../../src/checks/embeddings.js';
import { classifyDataDir, confValue, renderDpgcConf, renderPgHba, withCreateClusterDisabled, withDpgcInclude } from '../../src/components/postgres.js';
import { parseScramVerifier, scramMatches, scramVerifier } from '../../src/components/scram.js';
import { checkLedger, EXPECTED_TABLES, HNSW_INDEXES, listMigrations, parseMigrationFile, renderMigration, type Migration } from '../../src/components/schema.js';
import { PGVECTOR_NAMES } from '../../src/components/vector.js';
import { controlVersion } from '../../src/components/vector-install.js';
import { sizePostgres, sizingBasis } from '../../src/config/sizing.js';

const inv = {
  postgres: { version: 15 as const, vector: 'pgvector' as const, ruvector_image: 'x', synchronous_commit: 'on' as const, synchronous_node_count: 1, max_connections: 200, profile: 'vector' as const, storage: 'auto' as const, settings: {} },
  ports: { postgres: 5432 } as never,
  network: { allowed_cidrs: ['127.0.0.0/8', '10.0.0.0/24'] },
};

describe('SCRAM verifiers', () => {
  // Made by PostgreSQL 15: CREATE ROLE … PASSWORD 'pencil' with password_encryption = scram-sha-256.
  const fromPostgres = 'SCRAM-SHA-256$4096:SpsQAuXwalNAz6QcpqBWOA==$vbQ23uwxhhFkssJnEBEmc9spkzvkYWdaeJRGBuxy3i0=:F9eE9Qe68k/n1PxpOKRx4Zqb+h5vqbQdW5MbbsCAbNY=';

  it('matches what PostgreSQL computes for the same salt', () => {
    const p = parseScramVerifier(fromPostgres)!;
    expect(scramVerifier('pencil', p.salt, p.iterations)).toBe(fromPostgres);
    expect(scramMatches(fromPostgres, 'pencil')).toBe(true);
    expect(scramMatches(fromPostgres, 'pencil2')).toBe(false);
    expect(scramMatches(null, 'pencil')).toBe(false);
    expect(scramMatches('md5abcdef', 'pencil')).toBe(false);
  });

  it('uses a fresh salt each time and never contains the password', () => {
    const a = scramVerifier('a-long-generated-secret');
    expect(a).not.toBe(scramVerifier('a-long-generated-secret'));
    expect(a).not.toContain('a-long-generated-secret');
    expect(a).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
  });
});

describe('PostgreSQL configuration', () => {
  it('renders dpgc.conf with the node address, its own socket directory and no statement_timeout', () => {
    const text = renderDpgcConf({ ...inv, postgres: { ...inv.postgres, settings: { work_mem: '64MB', jit: false, effective_io_concurrency: 200 } } }, { address: '10.0.0.11' }, { pgSocketDir: '/lab/db1/var/run/postgresql' });
    expect(text).toContain("listen_addresses = '10.0.0.11'");
    expect(text).toContain("unix_socket_directories = '/lab/db1/var/run/postgresql'");
    expect(text).toContain("password_encryption = 'scram-sha-256'");
    expect(text).toContain('wal_log_hints = on');
    expect(text).toMatch(/^statement_timeout = 0$/m);
    expect(text).toContain("work_mem = '64MB'\njit = off\neffective_io_concurrency = 200");
  });

  it('renders the sizing, each value after the line saying where it came from, the inventory\'s last', () => {
    const pg = { ...inv.postgres, settings: { work_mem: '64MB' } };
    const sizing = sizePostgres(sizingBasis([{ name: 'db1', facts: { memoryBytes: 16 * 1024 ** 3, cpus: 4, rotational: false } }]), { profile: 'vector', maxConnections: 200, settings: pg.settings });
    const text = renderDpgcConf({ ...inv, postgres: pg }, { address: '10.0.0.11' }, { pgSocketDir: '/s' }, sizing);
    expect(text).toContain("# profile: 25% of 16.0 GiB on db1\nshared_buffers = '4GB'");
    expect(text).toContain("maintenance_work_mem = '2GB'");
    expect(text).toContain('random_page_cost = 1.1');
    expect(text).toContain("huge_pages = 'try'");
    expect(text.match(/^work_mem = .*$/gm)).toEqual(["work_mem = '64MB'"]);
    expect(text.indexOf("work_mem = '64MB'")).toBeGreaterThan(text.indexOf('shared_buffers'));
  });

  it('refuses a setting name that could inject lines', () => {
    expect(() => renderDpgcConf({ ...inv, postgres: { ...inv.postgres, settings: { "x = 1\nssl": 'on' } } }, { address: '1.2.3.4' }, { pgSocketDir: '/s' })).toThrow(/not a PostgreSQL setting/);
  });

  it('quotes values the way postgresql.conf wants', () => {
    expect(confValue("it's")).toBe("'it''s'");
    expect(confValue(true)).toBe('on');
    expect(confValue(3)).toBe('3');
  });

  it('renders pg_hba with SCRAM for each allowed network and nothing weaker', () => {
    const hba = renderPgHba(inv);
    expect(hba).toMatch(/^local\s+all\s+postgres\s+peer$/m);
    expect(hba).toMatch(/^host\s+all\s+all\s+10\.0\.0\.0\/24\s+scram-sha-256$/m);
    expect(hba).toMatch(/^host\s+replication\s+replicator\s+127\.0\.0\.0\/8\s+scram-sha-256$/m);
    expect(hba.split('\n').filter((l) => !l.startsWith('#'))).not.toContainEqual(expect.stringMatching(/trust|md5|password$/));
  });

  it('adds the include of dpgc.conf once', () => {
    const once = withDpgcInclude('max_connections = 100\n');
    expect(once).toMatch(/include 'dpgc.conf'\n$/);
    expect(withDpgcInclude(once)).toBe(once);
  });

  it('sets create_main_cluster = false, keeping the rest of the file', () => {
    expect(withCreateClusterDisabled('')).toMatch(/^# dpgc.*\ncreate_main_cluster = false\n$/);
    const disabled = 'ssl = on\ncreate_main_cluster = false\n';
    expect(withCreateClusterDisabled(disabled)).toBe(disabled);
    const enabled = withCreateClusterDisabled('ssl = on\ncreate_main_cluster = true');
    expect(enabled).toContain('#create_main_cluster = true');
    expect(enabled).toMatch(/\ncreate_main_cluster = false\n$/);
    expect(withCreateClusterDisabled(enabled)).toBe(enabled);
  });

  it('classifies the data directory and never calls a foreign one ours', () => {
    expect(classifyDataDir('absent\n', 15)).toEqual({ kind: 'absent' });
    expect(classifyDataDir('empty\n', 15)).toEqual({ kind: 'empty' });
    expect(classifyDataDir('version 15\nours\n', 15)).toEqual({ kind: 'ours', version: '15' });
    expect(classifyDataDir('version 15\nours\npatroni\n', 15)).toEqual({ kind: 'patroni', version: '15' });
    expect(classifyDataDir('version 15\n', 15)).toMatchObject({ kind: 'foreign', reason: expect.stringContaining('did not create') });
    expect(classifyDataDir('version 16\nours\n', 15)).toMatchObject({ kind: 'foreign', reason: expect.stringContaining('PostgreSQL 16') });
    expect(classifyDataDir('', 15)).toMatchObject({ kind: 'foreign', reason: expect.stringContaining('no PG_VERSION') });
  });

  it('reads an extension version from its control file', () => {
    expect(controlVersion("comment = 'x'\ndefault_version = '0.8.0'\n")).toBe('0.8.0');
    expect(controlVersion('comment = x')).toBeUndefined();
  });
});

describe('migrations', () => {
  it('parses file names', () => {
    expect(parseMigrationFile('0001_initial.sql')).toEqual({ version: 1, name: 'initial' });
    expect(parseMigrationFile('1_initial.sql')).toBeUndefined();
    expect(parseMigrationFile('0002_x.sql.bak')).toBeUndefined();
  });

  it('creates exactly the expected tables, with the engine type on every embedding column', () => {
    const [first] = listMigrations();
    const sql = renderMigration(first!, PGVECTOR_NAMES);
    const created = [...sql.matchAll(/CREATE TABLE (\w+)\.(\w+)/g)].map((m) => `${m[1]}.${m[2]}`);
    expect(created.sort()).toEqual(EXPECTED_TABLES.map((t) => `${t.schema}.${t.table}`).sort());
    const embeddingTables = [...sql.matchAll(/CREATE TABLE (\w+\.\w+) \(((?:.|\n)*?)\n\);/g)].filter((m) => /embedding\s+vector\(384\)/.test(m[2]!)).map((m) => m[1]);
    expect(embeddingTables.sort()).toEqual(HNSW_INDEXES.map((i) => `${i.schema}.${i.table}`).sort());
    expect(sql).not.toContain('<%');
  });

  it('stops on an edited or unknown applied migration', () => {
    const ms: Migration[] = [{ version: 1, name: 'initial', file: 'sql/migrations/0001_initial.sql', checksum: 'a'.repeat(64) }];
    expect(() => checkLedger(new Map([[1, { name: 'initial', checksum: 'a'.repeat(64) }]]), ms)).not.toThrow();
    expect(() => checkLedger(new Map([[1, { name: 'initial', checksum: 'b'.repeat(64) }]]), ms)).toThrow(/edited after it was applied/);
    expect(() => checkLedger(new Map([[2, { name: 'later', checksum: 'c' }]]), ms)).toThrow(/no such migration/);
  });
});

describe('memory API (pure parts)', () => {
  it('binds every value and orders by the engine operator', () => {
    const sql = searchSql(PGVECTOR_NAMES);
    expect(sql).toContain('ORDER BY embedding <=> $2::vector LIMIT $3');
    expect(sql).toContain('namespace = $1');
    expect(sql).toContain('similarity >= $4::float8');
    expect(new EmbeddingDimensionError(3).message).toBe('embedding has 3 dimensions; memory_entries stores exactly 384');
  });
});

describe('embedding-like test data', () => {
  it('is deterministic per seed, unit length, and not uniform noise', () => {
    const a = embeddingGenerator({ dim: 384, seed: 1 });
    const b = embeddingGenerator({ dim: 384, seed: 1 });
    const va = a.next();
    expect(va).toEqual(b.next());
    expect(va).toHaveLength(384);
    expect(Math.hypot(...va)).toBeCloseTo(1, 3);
    // Low rank: pairs are far more spread in similarity than uniform random vectors (all near 0).
    const sims = Array.from({ length: 50 }, () => Math.abs(cosine(a.next(), a.next())));
    expect(Math.max(...sims)).toBeGreaterThan(0.3);
    const r = mulberry32(9);
    const centred = () => Array.from({ length: 384 }, () => r() - 0.5);
    const uniform = Array.from({ length: 50 }, () => Math.abs(cosine(centred(), centred())));
    expect(Math.max(...uniform)).toBeLessThan(0.25);
  });

  it('computes recall@k', () => {
    expect(recallAtK([['a', 'b']], [['b', 'a']])).toBe(1);
    expect(recallAtK([['a', 'b'], ['c', 'd']], [['a', 'x'], ['c', 'd']])).toBe(0.75);
    expect(() => recallAtK([['a']], [])).toThrow(RangeError);
  });
});
