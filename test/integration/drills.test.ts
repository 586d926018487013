import { chmod, copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/config/load.js';
import { secretsPathFor } from '../../src/config/secrets.js';
import { inventoryWorstCase } from '../../src/config/timings.js';
import { patroniService } from '../../src/components/patroni.js';
import type { DrillResult } from '../../src/drills/result.js';
import { assessHealth } from '../../src/drills/health.js';
import { snapshot } from '../../src/drills/observe.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * Real drills on a real lab cluster (127.0.40.x): each one through the CLI,
 * as CI runs it, and judged here again from its --json document.
 */
let lab: TestLab;
let worstS: number;

beforeAll(async () => {
  lab = await createLab('127.0.40');
  const r = await lab.cli(['--yes', 'up'], { timeoutMs: 540_000 });
  if (r.code !== 0) throw new Error(`dpgc up failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  worstS = inventoryWorstCase(await loadInventory(lab.config)).totalS;
}, 600_000);

afterAll(async () => {
  await lab?.down();
});

async function drill(mode: string): Promise<{ code: number; doc: { passed: boolean; drills: DrillResult[] }; stderr: string }> {
  const r = await lab.cli(['--json', 'failover-test', '--mode', mode], { timeoutMs: 280_000 });
  let doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`no JSON document (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
  }
  return { code: r.code, doc, stderr: r.stderr };
}

function expectNoLostWrite(d: DrillResult) {
  expect(d.unchecked).toEqual([]);
  expect(d.nodes).toHaveLength(3);
  for (const n of d.nodes) expect({ node: n.node, lost: n.lost, duplicates: n.duplicates }).toEqual({ node: n.node, lost: 0, duplicates: 0 });
  expect(d.writes.acknowledgedAfterFault).toBeGreaterThan(0);
}

async function expectHealthy() {
  const ctx = await lab.context();
  const s = await snapshot(ctx.inventory);
  expect(assessHealth(s, ['db1', 'db2', 'db3']).problems).toEqual([]);
}

describe('failover-test on the lab', () => {
  it('kill: the primary host dies; a replica takes over within the worst case, no acknowledged write lost, old primary rejoins', async () => {
    const { code, doc, stderr } = await drill('kill');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(doc.passed).toBe(true);
    expect(d.newLeader).not.toBe(d.oldLeader);
    expectNoLostWrite(d);
    expect(d.outage.seconds).not.toBeNull();
    expect(d.outage.seconds!).toBeLessThanOrEqual(worstS);
    expect(d.timeline.rejoinedS).not.toBeNull();
    expect(stderr).toMatch(/detection\s+\+\d/);
    await expectHealthy();
  });

  it('switchover: planned, with a short write gap and nothing lost', async () => {
    const { code, doc, stderr } = await drill('switchover');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.newLeader).not.toBe(d.oldLeader);
    expectNoLostWrite(d);
    expect(d.outage.seconds!).toBeLessThanOrEqual(worstS);
    await expectHealthy();
  });

  it('etcd-member: one etcd member dies; the leader stays and writes carry on', async () => {
    const { code, doc, stderr } = await drill('etcd-member');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.newLeader).toBe(d.oldLeader);
    expectNoLostWrite(d);
    // No failover: the longest pause is nowhere near a ttl.
    expect(d.outage.seconds!).toBeLessThan(d.timings.ttl);
    await expectHealthy();
  });

  it('refuses to drill a degraded cluster and says what is wrong', async () => {
    const ctx = await lab.context();
    const s = await snapshot(ctx.inventory);
    const replica = s.members.find((m) => m.name !== s.leader)!.name;
    const node = await ctx.pool.node(replica);
    await node.services.stop({ name: 'patroni', stopTimeoutMs: 60_000 });
    try {
      const r = await lab.cli(['failover-test', '--mode', 'kill']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('refusing to run a kill drill: the cluster is not healthy');
      expect(r.stderr).toContain(replica);
    } finally {
      await node.services.start(patroniService(ctx.inventory, node));
    }
    const deadline = Date.now() + 90_000;
    while (!assessHealth(await snapshot(ctx.inventory), ['db1', 'db2', 'db3']).healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    await expectHealthy();
  });

  it('off the lab, asks for the cluster name; non-interactive without --yes is a usage error naming --yes', async () => {
    const real = join(lab.dir, 'real.yaml');
    await writeFile(real, (await readFile(lab.config, 'utf8')).replace(/^lab: true$/m, 'lab: false'));
    await copyFile(secretsPathFor(lab.config), secretsPathFor(real));
    await chmod(secretsPathFor(real), 0o600);
    const { dpgc } = await import('../helpers/cli.js');
    const r = await dpgc(['-c', real, 'failover-test', '--mode', 'kill']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Type the cluster name');
    expect(r.stderr).toContain('--yes');
  });
  // Last on purpose: Debian bookworm's Patroni 3.0.2 lets a resumed old leader
  // overwrite the leader key (fixed upstream in patroni/patroni#2689), in
  // about one freeze drill in three here (bench/failover/RESULTS.md). This
  // machine cannot install a fixed Patroni, so the test asserts the full
  // guarantee whenever the race is not hit, and otherwise that the drill
  // names that exact failure instead of passing it off (README, Known limitations).
  it('freeze: the hung primary wakes up after ttl and does not acknowledge a write', async () => {
    const { code, doc, stderr } = await drill('freeze');
    const d = doc.drills[0]!;
    if (d.leaderRetakenFrom !== null) {
      expect(code).toBe(1);
      expect(d.passed).toBe(false);
      expect(d.criteria.find((c) => c.id === 'leader-changed')?.ok).toBe(false);
      expect(d.notes.join('\n')).toContain('patroni/patroni#2689');
      console.warn(`freeze drill hit Patroni 3.0.2's leader-key overwrite (patroni/patroni#2689): ${d.victim} took the key back from ${d.leaderRetakenFrom}`);
      return;
    }
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.oldPrimaryProbe?.accepted).toBe(false);
    expectNoLostWrite(d);
    expect(d.outage.seconds!).toBeLessThanOrEqual(worstS);
    await expectHealthy();
  });
});
