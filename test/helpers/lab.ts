import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadInventory } from '../../src/config/load.js';
import { Secrets, secretsPathFor } from '../../src/config/secrets.js';
import { caPathsFor } from '../../src/components/ca.js';
import type { RunContext } from '../../src/context.js';
import { HostPool } from '../../src/hosts/pool.js';
import { silentLogger } from '../../src/output/log.js';
import { dpgc, type CliResult } from './cli.js';

/**
 * A lab on its own loopback subnet and temp directory, so test files (and a
 * developer's own lab on 127.0.0.x) never collide. Subnets in use:
 * 127.0.10 sprint 0, 127.0.20 sprint 1, 127.0.30 sprints 2-3, 127.0.40 drills, 127.0.50 ssh,
 * 127.0.60 services, 127.0.80 interrupt, 127.0.120 safety-lab, 127.0.130 sprint 4, 127.0.160 init wizard, 127.0.180 host-certs inputs (no daemons);
 * bench/failover uses 127.0.70. DPGC_TEST_SUBNET moves a run to another subnet, so two checkouts
 * can run the same file at once (a developer's worktree beside CI-like runs).
 */
export interface TestLab {
  dir: string;
  config: string;
  cli(args: string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  /** An in-process context for direct measurements and for breaking things on purpose. */
  context(): Promise<RunContext>;
  down(): Promise<void>;
}

export async function createLab(fileSubnet: string, opts: { ssh?: boolean } = {}): Promise<TestLab> {
  const subnet = process.env['DPGC_TEST_SUBNET'] ?? fileSubnet;
  const dir = await mkdtemp(join('/tmp', `dpgc-test-${subnet.replace(/\./g, '-')}-`));
  // mkdtemp makes it 0700; daemons run as their own users (postgres, etcd…) and must reach their directories below it.
  await chmod(dir, 0o755);
  const config = join(dir, 'dpgc.yaml');
  const contexts: RunContext[] = [];
  const lab: TestLab = {
    dir,
    config,
    cli: (args, o = {}) => dpgc(['-c', config, ...args], o),
    async context() {
      const inventory = await loadInventory(config);
      const secrets = new Secrets(secretsPathFor(inventory.file), { caCert: caPathsFor(inventory.file).cert });
      const pool = new HostPool(inventory, { dryRun: false, logger: silentLogger, acceptNewHostKeys: false });
      const ctx: RunContext = {
        inventory,
        secrets,
        pool,
        logger: silentLogger,
        options: { config, json: false, yes: true, dryRun: false, verbose: false, acceptNewHostKeys: false, nonInteractive: true },
      };
      contexts.push(ctx);
      return ctx;
    },
    async down() {
      for (const c of contexts) await c.pool.close();
      if (existsSync(config)) await dpgc(['-c', config, '--yes', 'lab', 'down']);
      await rm(dir, { recursive: true, force: true });
    },
  };
  const r = await dpgc(['-c', config, 'lab', 'init', '--subnet', subnet, '--dir', join(dir, 'lab'), ...(opts.ssh ? ['--ssh'] : [])]);
  if (r.code !== 0) throw new Error(`lab init failed: ${r.stderr}`);
  return lab;
}
