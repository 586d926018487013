import { describe, expect, it } from 'vitest';
import {
  columnType,
  createExtensionSql,
  efSearchSql,
  hnswIndexSql,
  PGVECTOR_NAMES,
  ruvectorNamesFromCatalog,
  vectorLiteral,
  vectorNames,
  type CatalogRows,
} from '../../src/components/vector.js';
import { DpgcError } from '../../src/errors.js';

const ix = { schema: 'public', table: 'memory_entries', column: 'embedding', name: 'memory_entries_embedding_hnsw' };

/** Catalog rows as three ruvector releases present them (NOTES.md: the access method and GUC were renamed). */
const releases: Record<string, CatalogRows> = {
  early: {
    types: ['_ruvector', 'ruvector'],
    accessMethods: ['hnsw'],
    opclasses: [
      { opcname: 'ruvector_l2_ops', amname: 'hnsw' },
      { opcname: 'ruvector_cosine_ops', amname: 'hnsw' },
    ],
    settings: ['ruvector.ef_search'],
  },
  middle: {
    types: ['ruvector', 'rusparsevec'],
    accessMethods: ['ruvector_hnsw', 'ruvector_ivfflat'],
    opclasses: [
      { opcname: 'ruvector_cosine_ops', amname: 'ruvector_ivfflat' },
      { opcname: 'ruvector_cosine_ops', amname: 'ruvector_hnsw' },
      { opcname: 'ruvector_ip_ops', amname: 'ruvector_hnsw' },
    ],
    settings: ['ruvector.hnsw_ef_search', 'ruvector.ivfflat_probes'],
  },
  late: {
    types: ['ruvector'],
    accessMethods: ['ruhnsw'],
    opclasses: [{ opcname: 'ruvector_cosine_ops', amname: 'ruhnsw' }],
    settings: [],
  },
};

describe('pgvector names and SQL', () => {
  it('generates the extension, column type, HNSW index and ef_search statements', () => {
    expect(createExtensionSql('pgvector')).toBe('CREATE EXTENSION IF NOT EXISTS vector');
    expect(columnType(PGVECTOR_NAMES)).toBe('vector(384)');
    expect(hnswIndexSql(PGVECTOR_NAMES, ix)).toBe(
      'CREATE INDEX IF NOT EXISTS memory_entries_embedding_hnsw ON public.memory_entries USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)',
    );
    expect(efSearchSql(PGVECTOR_NAMES, 100)).toBe('SET LOCAL hnsw.ef_search = 100');
    expect(() => efSearchSql(PGVECTOR_NAMES, 0)).toThrow(RangeError);
  });

  it('needs no catalog query for pgvector', async () => {
    const names = await vectorNames('pgvector', async () => {
      throw new Error('no query expected');
    });
    expect(names).toBe(PGVECTOR_NAMES);
  });
});

describe('ruvector names from its catalog', () => {
  it.each([
    ['early', 'hnsw', 'ruvector.ef_search'],
    ['middle', 'ruvector_hnsw', 'ruvector.hnsw_ef_search'],
    ['late', 'ruhnsw', undefined],
  ])('%s release: access method %s, search setting %s', (release, am, guc) => {
    const n = ruvectorNamesFromCatalog(releases[release]!);
    expect(n).toMatchObject({ extension: 'ruvector', type: 'ruvector', accessMethod: am, cosineOpclass: 'ruvector_cosine_ops', efSearchGuc: guc });
    expect(columnType(n)).toBe('ruvector(384)');
    expect(hnswIndexSql(n, ix)).toBe(
      `CREATE INDEX IF NOT EXISTS memory_entries_embedding_hnsw ON public.memory_entries USING ${am} (embedding ruvector_cosine_ops) WITH (m = 16, ef_construction = 64)`,
    );
    expect(efSearchSql(n, 100)).toBe(guc ? `SET LOCAL ${guc} = 100` : undefined);
    expect(createExtensionSql('ruvector')).toBe('CREATE EXTENSION IF NOT EXISTS ruvector');
    expect(n.versionSql).toBe('SELECT ruvector_version()::text AS version');
  });

  it('refuses a release without an HNSW access method or cosine opclass, naming what it found', () => {
    expect(() => ruvectorNamesFromCatalog({ types: ['ruvector'], accessMethods: ['ruivf'], opclasses: [], settings: [] })).toThrow(/no HNSW access method.*ruivf/);
    expect(() =>
      ruvectorNamesFromCatalog({ types: ['ruvector'], accessMethods: ['ruhnsw'], opclasses: [{ opcname: 'ruvector_l2_ops', amname: 'ruhnsw' }], settings: [] }),
    ).toThrow(DpgcError);
  });

  it('reads the catalog through the query function it is given', async () => {
    const seen: string[] = [];
    const n = await vectorNames('ruvector', async (sql, params) => {
      seen.push(sql);
      if (sql.includes('pg_type')) return { rows: releases['middle']!.types.map((name) => ({ name })) };
      if (sql.includes('pg_opclass')) return { rows: releases['middle']!.opclasses };
      if (sql.includes('pg_am')) return { rows: releases['middle']!.accessMethods.map((name) => ({ name })) };
      if (sql.includes('pg_settings')) {
        expect(params).toEqual(['ruvector']);
        return { rows: releases['middle']!.settings.map((name) => ({ name })) };
      }
      return { rows: [] };
    });
    expect(seen[0]).toBe('SELECT ruvector_version()');
    expect(n.accessMethod).toBe('ruvector_hnsw');
  });
});

describe('vectorLiteral', () => {
  it('formats bound parameters and refuses non-finite numbers', () => {
    expect(vectorLiteral([0.5, -1, 2e-7])).toBe('[0.5,-1,2e-7]');
    expect(() => vectorLiteral([NaN])).toThrow(RangeError);
  });
});

describe('one module knows the engines', () => {
  it('no other source or template spells a vector type, operator class, access method or search setting', async () => {
    const { readdirSync, readFileSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const root = new URL('../..', import.meta.url).pathname;
    const files: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.(ts|eta|sql|ya?ml|json|sh)$/.test(f)) files.push(p);
      }
    };
    for (const d of ['src', 'sprints', 'templates']) walk(join(root, d));
    const spelled = /vector_cosine_ops|ruvector_\w+_ops|hnsw\.ef_search|ruvector\.\w*ef_search|USING hnsw|::vector\b|\bvector\(\d\d|\bruvector\(\d|extname = 'vector'/;
    // SQL comments may name an example; statements may not. (PromQL's vector(0) is not a column type.)
    const code = (f: string) => readFileSync(f, 'utf8').replace(f.endsWith('.sql') ? /--.*$/gm : /$^/, '');
    const offenders = files.filter((f) => !f.endsWith('src/components/vector.ts') && spelled.test(code(f)));
    expect(offenders.map((f) => f.slice(root.length))).toEqual([]);
  });
});
