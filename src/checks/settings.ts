import { writableHost } from '../components/databases.js';
import { DATABASES, superuserOn } from '../components/endpoints.js';
import { clusterSizing, databaseEfSearch, describeDrift, memberDrift, settingRows } from '../components/sizing.js';
import { vectorNames } from '../components/vector.js';
import { efSearch, humanBytes } from '../config/sizing.js';
import { withClient } from '../db/client.js';
import { fail, pass, warn, type Check } from './types.js';

/**
 * PostgreSQL sized to its hosts, measured: the settings in force (pg_settings,
 * units normalised) are the ones dpgc computed from the hosts' facts, the
 * profile and postgres.settings; each application database carries its
 * ef_search; the HNSW indexes fit in the memory the server has for them.
 */

/**
 * Sprint 0: the base instance (or whichever host took over writes). Sprint 3:
 * every member, since Patroni's dynamic configuration reaches each one on its
 * own (and a member can still wait for its restart).
 */
export function settingsCheck(sprint: number, id: string, scope: 'base' | 'members' = sprint >= 3 ? 'members' : 'base'): Check {
  return {
    id,
    title: scope === 'base' ? 'PostgreSQL runs with the settings dpgc sized for its hosts' : 'Every member runs with the settings dpgc sized for the hosts',
    sprint,
    kind: 'state',
    async run(ctx) {
      const inv = ctx.inventory;
      const sizing = await clusterSizing(inv, ctx.pool);
      const hosts = scope === 'base' ? [await writableHost(inv, ctx.secrets)] : inv.hosts.filter((h) => h.roles.includes('postgres'));
      const drift = await Promise.all(hosts.map(async (h) => ({ h: h.name, d: await memberDrift(inv, ctx.secrets, h, sizing.settings) })));
      const bad = drift.filter((x) => x.d.length);
      const what = `${sizing.settings.length} settings, profile ${sizing.profile}, ${humanBytes(sizing.basis.memoryBytes)} per instance`;
      if (!bad.length) return pass(`${what}${hosts.length > 1 ? ` on ${hosts.length} members` : ` on ${hosts[0]!.name}`}`, 'as computed');
      const pendingOnly = bad.every((x) => x.d.every((d) => d.pendingRestart));
      return fail(bad.map((x) => `${x.h}: ${describeDrift(x.d)}`).join('; '), {
        value: `${bad.reduce((n, x) => n + x.d.length, 0)} setting(s) differ`,
        threshold: 'as computed',
        remedy: pendingOnly
          ? `Run \`dpgc sprint ${Math.max(sprint, 0)}\`: it restarts the members named, one at a time.`
          : `Run \`dpgc sprint ${sprint}\` again: it writes dpgc's values${sprint >= 3 ? ' to Patroni’s dynamic configuration' : ''} and drops ALTER SYSTEM overrides of them. To keep a value of your own, put it under postgres.settings in the inventory.`,
      });
    },
  };
}

export const efSearchCheck: Check = {
  id: 's0.vector.ef-search',
  title: 'Each application database sets the HNSW search breadth (ef_search) dpgc chose',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const inv = ctx.inventory;
    const h = await writableHost(inv, ctx.secrets);
    const wrong: string[] = [];
    let want = efSearch(inv.postgres);
    for (const d of Object.values(DATABASES)) {
      await withClient(ctx.secrets, superuserOn(inv, h, d.name), async (c) => {
        const guc = (await vectorNames(inv.postgres.vector, (sql, p) => c.query(sql, p))).efSearchGuc;
        if (!guc) return;
        want = efSearch(inv.postgres, guc);
        const have = await databaseEfSearch(c, d.name, guc);
        if (have !== want.value) wrong.push(`${d.name} has ${guc} ${have ?? 'unset (the extension default)'}`);
      });
    }
    if (wrong.length) return fail(`${wrong.join('; ')}; dpgc sets ${want.value} (${want.source}: ${want.why})`, { threshold: String(want.value), remedy: 'Run `dpgc sprint 0` again: it sets it per database (ALTER DATABASE … SET).' });
    return pass(`${want.value} in both databases (${want.source})`, String(want.value));
  },
};

/**
 * HNSW searches walk the graph at random: an index that does not fit in
 * shared_buffers is read from the OS cache, and one beyond
 * effective_cache_size from disk, at many times the latency. A warning, not
 * a failure: the cluster works, only slower.
 */
export const indexMemoryCheck: Check = {
  id: 's0.vector.index-memory',
  title: 'The HNSW indexes fit in the memory PostgreSQL has for them',
  sprint: 0,
  kind: 'state',
  required: false,
  async run(ctx) {
    const inv = ctx.inventory;
    const h = await writableHost(inv, ctx.secrets);
    let total = 0;
    let sb = 0;
    let cache = 0;
    for (const d of Object.values(DATABASES)) {
      await withClient(ctx.secrets, superuserOn(inv, h, d.name), async (c) => {
        const am = (await vectorNames(inv.postgres.vector, (sql, p) => c.query(sql, p))).accessMethod;
        const r = await c.query<{ b: string }>(
          `SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0)::text AS b FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = $1`,
          [am],
        );
        total += Number(r.rows[0]!.b);
        const rows = await settingRows(c, ['shared_buffers', 'effective_cache_size']);
        const bytes = (n: string) => {
          const row = rows.find((x) => x.name === n)!;
          return Number(row.setting) * (row.unit === '8kB' ? 8192 : row.unit === 'kB' ? 1024 : 1);
        };
        sb = bytes('shared_buffers');
        cache = bytes('effective_cache_size');
      });
    }
    const value = `${humanBytes(total)} of HNSW indexes; shared_buffers ${humanBytes(sb)}, effective_cache_size ${humanBytes(cache)}`;
    if (total <= sb) return pass(value, '≤ shared_buffers');
    const remedy = 'Give the hosts more memory, or raise shared_buffers under postgres.settings (and re-run the sprint); `dpgc status` shows how it was sized.';
    if (total <= cache) return warn(`the HNSW indexes (${humanBytes(total)}) exceed shared_buffers (${humanBytes(sb)}): searches read pages from the OS cache`, { value, threshold: '≤ shared_buffers', remedy });
    return warn(`the HNSW indexes (${humanBytes(total)}) exceed effective_cache_size (${humanBytes(cache)}): searches will read from disk`, { value, threshold: '≤ shared_buffers', remedy });
  },
};
