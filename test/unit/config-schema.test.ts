import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { inventoryJsonSchema } from '../../src/cli/commands/schema.js';
import { parseInventory } from '../../src/config/load.js';
import { labInventory } from '../../src/lab/inventory.js';

/**
 * The JSON Schema `dpgc schema` prints is generated from the zod schema the
 * loader uses. It must never reject what the loader accepts (an editor would
 * flag a good file), and a tiny validator is enough to show it.
 */

type Schema = {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  minLength?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  anyOf?: Schema[];
};

/** The JSON Schema keywords zod emits for the inventory, checked; returns where the value fails. */
function violations(s: Schema, v: unknown, at = '$'): string[] {
  if (s.anyOf) return s.anyOf.some((alt) => violations(alt, v, at).length === 0) ? [] : [`${at}: matches no alternative`];
  const out: string[] = [];
  const type = Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
  const types = s.type === undefined ? undefined : [s.type].flat();
  const typeOk = (t: string) => (t === 'integer' ? Number.isInteger(v) : t === type);
  if (types && !types.some(typeOk)) return [`${at}: expected ${types.join(' or ')}, got ${type}`];
  if (s.enum && !s.enum.includes(v)) out.push(`${at}: not in enum`);
  if ('const' in s && s.const !== v) out.push(`${at}: not ${JSON.stringify(s.const)}`);
  if (typeof v === 'string') {
    if (s.pattern && !new RegExp(s.pattern).test(v)) out.push(`${at}: does not match ${s.pattern}`);
    if (s.minLength !== undefined && v.length < s.minLength) out.push(`${at}: too short`);
  }
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < s.minimum) out.push(`${at}: below minimum`);
    if (s.maximum !== undefined && v > s.maximum) out.push(`${at}: above maximum`);
    if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) out.push(`${at}: not above exclusiveMinimum`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) out.push(`${at}: too few items`);
    if (s.items) v.forEach((x, i) => out.push(...violations(s.items!, x, `${at}[${i}]`)));
  }
  if (type === 'object') {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) out.push(`${at}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      const p = s.properties?.[k];
      if (p) out.push(...violations(p, x, `${at}.${k}`));
      else if (s.additionalProperties === false) out.push(`${at}.${k}: not allowed`);
      else if (typeof s.additionalProperties === 'object') out.push(...violations(s.additionalProperties, x, `${at}.${k}`));
    }
  }
  return out;
}

const schema = inventoryJsonSchema() as Schema & { properties: Record<string, Schema> };
const fixture = async (name: string) => readFile(fileURLToPath(new URL(`../fixtures/inventories/${name}`, import.meta.url)), 'utf8');

describe('dpgc schema', () => {
  it('describes the inventory: hosts required, each host with name, address and roles', () => {
    expect(schema.required).toEqual(['cluster', 'hosts']);
    expect(schema.properties['hosts']?.items?.required).toEqual(['name', 'address', 'roles']);
    expect(schema.additionalProperties).toBe(false);
  });

  it.each([
    ['the lab inventory', labInventory({ dir: '/tmp/dpgc-lab', subnet: '127.0.0' })],
    ['the lab inventory over SSH', labInventory({ dir: '/tmp/dpgc-lab', subnet: '127.0.0', ssh: { port: 2222, key: '/tmp/k', knownHosts: '/tmp/kh' } })],
  ])('accepts %s, as the loader does', (_name, inv) => {
    expect(parseInventory(JSON.stringify(inv), 'lab.yaml').issues).toEqual([]);
    expect(violations(schema, inv)).toEqual([]);
  });

  it.each(['valid-minimal.yaml', 'no-etcd.yaml'])('accepts %s, as the loader does', async (name) => {
    const text = await fixture(name);
    expect(parseInventory(text, name).issues).toEqual([]);
    expect(violations(schema, parse(text))).toEqual([]);
  });

  it('accepts every field set explicitly', () => {
    const full = {
      cluster: 'main',
      lab: false,
      postgres: { version: 17, vector: 'ruvector', ruvector_image: 'x:1', synchronous_commit: 'remote_apply', synchronous_node_count: 1, max_connections: 300, settings: { work_mem: '64MB', jit: false, max_wal_senders: 10 } },
      network: { allowed_cidrs: ['10.0.0.0/24', '192.168.1.7/32'] },
      timings: { profile: 'safe', rto_budget_s: 45 },
      pgbouncer: { pool_mode: 'session', max_client_conn: 500, default_pool_size: 20, reserve_pool_size: 0, reserve_pool_timeout: 0 },
      grafana: { url: 'http://10.0.0.10:3000' },
      backup: { repo_path: '/srv/pgbackrest', retention_full: 3 },
      defaults: { transport: 'ssh', ssh: { user: 'admin', port: 22, key: '~/.ssh/id_ed25519', sudo: true, connect_timeout_s: 5 }, root: '', services: 'systemd' },
      hosts: [
        { name: 'db1', address: '10.0.0.11', roles: ['postgres', 'etcd'], ssh: { host_key_fingerprints: [`SHA256:${'A'.repeat(43)}`] } },
        { name: 'db2', address: '10.0.0.12', roles: ['postgres', 'etcd'], transport: 'ssh', services: 'systemd' },
        { name: 'db3', address: '10.0.0.13', roles: ['postgres', 'etcd', 'haproxy', 'pgbouncer', 'monitoring', 'backup'], root: '' },
      ],
    };
    expect(parseInventory(JSON.stringify(full), 'full.yaml').issues).toEqual([]);
    expect(violations(schema, full)).toEqual([]);
  });

  it('rejects, like the loader, an unknown key and a quoted port (the validator is not a no-op)', async () => {
    expect(violations(schema, parse(await fixture('unknown-key-nested.yaml')))).toEqual(['$.postgres.synchronous_mod: not allowed']);
    expect(violations(schema, parse(await fixture('port-as-string.yaml')))).toEqual(['$.hosts[0].ssh.port: expected integer, got string']);
    expect(violations(schema, parse(await fixture('cidr-prefix-33.yaml')))).toEqual([expect.stringMatching(/^\$\.network\.allowed_cidrs\[1\]: does not match/)]);
  });
});
