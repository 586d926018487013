import { searchMemory } from '../app/memory.js';
import { appOn, DATABASES, superuserOn } from '../components/endpoints.js';
import { inspectSchema } from '../components/schema.js';
import { EMBEDDING_DIM, ENGINES, extensionName } from '../components/vector.js';
import { connect, withClient, type Client } from '../db/client.js';
import { embeddingGenerator } from './embeddings.js';
import { fail, pass, type Check } from './types.js';
import { dcsInitializeKey } from '../components/takeover.js';
import { DBS, perDatabase, pgHosts, vectorNamesIn, writable } from './common.js';

/**
 * PostgreSQL's criteria: the server answers, the extension and databases and
 * schema exist, concurrent clients connect, and after sprint 3 every member
 * shares one system identifier. Measured from the control machine over TCP
 * with SCRAM, the way applications connect.
 */

export const reachable: Check = {
  id: 's0.pg.reachable',
  title: 'PostgreSQL 15 or newer answers on the base host',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const h = await writable(ctx);
    const r = await withClient(ctx.secrets, superuserOn(ctx.inventory, h), async (c) =>
      (await c.query<{ num: string; v: string }>("SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS v")).rows[0]!,
    );
    const where = `${h.name} ${h.address}:${ctx.inventory.ports.postgres}`;
    if (Number(r.num) < 150000) return fail(`${where} runs PostgreSQL ${r.v}; dpgc needs 15 or newer`, { value: r.v, threshold: '≥ 15' });
    return pass(`${r.v.split(' ')[0]} on ${where}`, '≥ 15');
  },
};

export const extensionInstalled: Check = {
  id: 's0.vector.extension',
  title: 'The vector extension is installed in both databases',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const engine = ctx.inventory.postgres.vector;
    const rows = await perDatabase(ctx, async (c) => (await c.query<{ v: string }>('SELECT extversion AS v FROM pg_extension WHERE extname = $1', [extensionName(engine)])).rows[0]?.v);
    const missing = rows.filter((x) => !x.r).map((x) => x.db);
    if (missing.length) return fail(`${ENGINES[engine].label} is not installed in ${missing.join(' and ')}`, { remedy: 'Run `dpgc sprint 0` again: it creates the extension where it is missing.' });
    const versions = [...new Set(rows.map((x) => x.r))];
    return pass(`${ENGINES[engine].label} ${versions.join(', ')}`, 'in both databases');
  },
};

export const databases: Check = {
  id: 's0.databases',
  title: 'Both databases exist and their owners can connect',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const host = await writable(ctx);
    const problems = (
      await Promise.all(
        DBS.map(async (key) => {
          const d = DATABASES[key];
          try {
            const owner = await withClient(ctx.secrets, appOn(ctx.inventory, host, key), async (c) =>
              (await c.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()')).rows[0]?.owner,
            );
            return owner === d.owner ? [] : [`${d.name} is owned by ${owner}, not ${d.owner}`];
          } catch (e) {
            return [(e as Error).message];
          }
        }),
      )
    ).flat();
    if (problems.length) return fail(problems.join('\n'), { remedy: 'Run `dpgc sprint 0` again: it restores owners and CONNECT grants.' });
    return pass(`${DBS.length}/${DBS.length}`, DBS.map((k) => `${DATABASES[k].name} (${DATABASES[k].owner})`).join(', '));
  },
};

export const schemaPresent: Check = {
  id: 's0.schema.tables',
  title: 'Both schemas and every table exist in both databases',
  sprint: 0,
  kind: 'state',
  async run(ctx) {
    const rows = await perDatabase(ctx, (c) => inspectSchema(c));
    const problems = rows.flatMap(({ db, r }) => [
      ...r.missingSchemas.map((s) => `${db}: schema ${s} missing`),
      ...r.missingTables.map((t) => `${db}: table ${t} missing`),
      ...(r.schemaVersion ? [] : [`${db}: no schema_version in public.metadata`]),
    ]);
    if (problems.length) return fail(problems.join('\n'));
    return pass(`schema version ${[...new Set(rows.map((x) => x.r.schemaVersion))].join(', ')}`, 'all tables in both databases');
  },
};

export const CONNECTION_CLIENTS = 5;

export const CONNECTION_SECONDS = 3;

export const connections: Check = {
  id: 's0.connections',
  title: `${CONNECTION_CLIENTS} concurrent clients for ${CONNECTION_SECONDS} s without an error`,
  sprint: 0,
  kind: 'load',
  // Load, but not exclusive: it only reads, and what it measures is errors, with no timeout of its own, so
  // another check's load neither causes nor hides one, and its five readers change no other check's measure.
  exclusive: false,
  async run(ctx) {
    let queries = 0;
    const errors: string[] = [];
    const gen = embeddingGenerator({ dim: EMBEDDING_DIM, seed: 7 });
    const host = await writable(ctx);
    const agent = async (i: number) => {
      let c: Client | undefined;
      try {
        c = await connect(ctx.secrets, appOn(ctx.inventory, host, i % 2 ? 'shared' : 'project'), { applicationName: `dpgc-check-${i}` });
        const n = await vectorNamesIn(ctx, c);
        const q = gen.next();
        // The window opens once this client is connected: on a loaded machine finding the host and connecting
        // took longer than the whole window, and the check saw no query at all (0 queries, 0 errors).
        const until = Date.now() + CONNECTION_SECONDS * 1000;
        while (Date.now() < until) {
          await c.query('SELECT count(*) FROM public.memory_entries WHERE namespace = $1', ['dpgc-check']);
          await searchMemory(c, n, { namespace: 'dpgc-check', query: q, limit: 5 });
          queries += 2;
        }
      } catch (e) {
        errors.push((e as Error).message);
      } finally {
        await c?.end().catch(() => {});
      }
    };
    await Promise.all(Array.from({ length: CONNECTION_CLIENTS }, (_, i) => agent(i)));
    const value = `${queries} queries, ${errors.length} errors`;
    if (errors.length || queries === 0) return fail(errors[0] ?? 'no query completed', { value, threshold: '0 errors' });
    return pass(value, '0 errors');
  },
};

export const systemIdentifier: Check = {
  id: 's3.system.identifier',
  title: 'Every node carries the system identifier Patroni adopted from the sprint-0 instance',
  sprint: 3,
  kind: 'state',
  async run(ctx) {
    const dcs = await dcsInitializeKey(ctx.inventory, ctx.pool);
    if (!dcs) return fail('no initialize key in etcd: Patroni has not taken the cluster over', { remedy: 'Run `dpgc sprint 3`.' });
    const other: string[] = [];
    for (const h of pgHosts(ctx)) {
      const id = await withClient(ctx.secrets, superuserOn(ctx.inventory, h), async (c) => (await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id);
      if (id !== dcs) other.push(`${h.name} has ${id}`);
    }
    if (other.length) return fail(`the DCS records ${dcs}; ${other.join(', ')}`, { value: dcs, remedy: 'A node with another system identifier is another database: stop Patroni there and investigate before anything else.' });
    return pass(dcs);
  },
};
