import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployedSprint, observeDeployed } from '../../src/components/deployed.js';
import { haproxyBackends, pgbouncerTargets, pgbouncerTargetsAt } from '../../src/components/haproxy.js';
import { baseInstanceBackends } from '../../src/components/pgbouncer.js';
import { monitoredSprint } from '../../src/components/prometheus.js';
import { parseInventory } from '../../src/config/load.js';
import type { Inventory } from '../../src/config/schema.js';
import { HostPool } from '../../src/hosts/pool.js';
import { labInventoryYaml } from '../../src/lab/inventory.js';
import { silentLogger } from '../../src/output/log.js';
import { labInv } from '../helpers/lab-inventory.js';

/** Where PgBouncer points and what Prometheus scrapes follow the live cluster, never the state file (a record of runs). */
describe('routing from the live cluster', () => {
  const inv = labInv();

  it('PgBouncer points at the base instance until Patroni runs the cluster, then at HAProxy', () => {
    for (const s of [0, 1, 2]) expect(pgbouncerTargetsAt(inv, s)).toEqual(baseInstanceBackends(inv));
    expect(pgbouncerTargetsAt(inv, 3)).toEqual(haproxyBackends(inv));
    const noHaproxy = { ...inv, hosts: inv.hosts.map((h) => ({ ...h, roles: h.roles.filter((r) => r !== 'haproxy') })) };
    expect(pgbouncerTargetsAt(noHaproxy, 3)).toEqual(baseInstanceBackends(noHaproxy));
  });

  it('the sprint the cluster is at: 3 with Patroni initialised, 2 with etcd only, else 0', () => {
    expect(deployedSprint({ etcd: false, patroni: false })).toBe(0);
    expect(deployedSprint({ etcd: true, patroni: false })).toBe(2);
    expect(deployedSprint({ etcd: true, patroni: true })).toBe(3);
  });
});

describe('a state file that claims more than the hosts show', () => {
  let dir: string;
  let inventory: Inventory;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dpgc-routing-'));
    // A subnet nothing on this machine listens on: no etcd, no Patroni.
    const r = parseInventory(labInventoryYaml({ dir: join(dir, 'lab'), subnet: '127.0.231' }), join(dir, 'dpgc.yaml'));
    if (!r.inventory) throw new Error(JSON.stringify(r.issues));
    inventory = r.inventory;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const rec = { at: '2026-12-02T04:00:00.000Z', inventoryHash: '0123456789abcdef', passed: true, results: [] };
  it.each([
    ['sprint 3 recorded', JSON.stringify({ sprints: { 0: rec, 1: rec, 2: rec, 3: rec } })],
    ['corrupt', '{"sprints":'],
    ['missing', undefined],
  ])('%s: PgBouncer stays on the base instance and Prometheus on sprint 1 targets', async (_label, text) => {
    const stateFile = join(dir, 'dpgc.state.json');
    if (text === undefined) await rm(stateFile, { force: true });
    else await writeFile(stateFile, text);
    const ctx = { inventory, pool: new HostPool(inventory, { dryRun: false, logger: silentLogger }) };
    expect(await observeDeployed(inventory, ctx.pool)).toEqual({ etcd: false, patroni: false });
    expect(await pgbouncerTargets(ctx)).toEqual(baseInstanceBackends(inventory));
    expect(await monitoredSprint(ctx, 1)).toBe(1);
  });
});
