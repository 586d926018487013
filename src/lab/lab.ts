import { statePathFor } from '../state.js';
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import type { Inventory } from '../config/schema.js';
import { hostPaths } from '../config/paths.js';
import { ConfigError } from '../errors.js';
import { LocalHost } from '../hosts/local.js';
import { serviceManager } from '../hosts/services.js';
import type { Logger } from '../output/log.js';

/** Stop order: clients of a service before the service, etcd and sshd last. */
const STOP_ORDER = ['pool', 'pgbouncer-exporter', 'pgbouncer', 'haproxy', 'prometheus', 'postgres-exporter', 'node-exporter', 'patroni', 'postgresql', 'etcd', 'sshd'];

/** The lab's directory: the common parent of its hosts' roots. */
export function labDir(inv: Inventory): string {
  if (!inv.lab) throw new ConfigError(`${inv.file} is not a lab inventory (no \`lab: true\`); \`dpgc lab down\` only removes labs`);
  const roots = inv.hosts.map((h) => h.root).filter(Boolean);
  const parents = new Set(roots.map((r) => r.replace(/\/[^/]+$/, '')));
  const [dir] = parents;
  if (parents.size !== 1 || !dir || dir === '' || dir === '/') {
    throw new ConfigError(`${inv.file}: lab hosts do not share one lab directory (roots: ${roots.join(', ')})`, { hint: 'Remove the lab by hand.' });
  }
  return dir;
}

/**
 * Stops every process the lab started, by its pid file only (never by name:
 * a foreign postgres on this machine is none of our business), then removes
 * the lab directory.
 */
export async function labDown(inv: Inventory, logger: Logger): Promise<{ stopped: string[]; removed: string | undefined }> {
  const dir = labDir(inv);
  const stopped: string[] = [];
  const all: { host: string; name: string; stop: () => Promise<{ changed: boolean }> }[] = [];
  for (const spec of inv.hosts) {
    const paths = hostPaths(inv, spec);
    if (!existsSync(paths.runDir)) continue;
    const host = new LocalHost({ name: spec.name, address: spec.address, dryRun: false, logger });
    const services = serviceManager(host, { services: 'supervised' }, paths);
    for (const f of await readdir(paths.runDir)) {
      if (!f.endsWith('.pid')) continue;
      const name = f.slice(0, -4);
      all.push({ host: spec.name, name, stop: () => services.stop({ name, stopTimeoutMs: 90_000 }) });
    }
  }
  // One service kind at a time across every host (all Patroni before any etcd), hosts in parallel.
  for (const r of [...new Set(all.map((a) => rank(a.name)))].sort((x, y) => x - y)) {
    await Promise.all(
      all
        .filter((a) => rank(a.name) === r)
        .map(async (a) => {
          if ((await a.stop()).changed) {
            stopped.push(`${a.host}/${a.name}`);
            logger.info(`Stopped ${a.name} on ${a.host}`);
          }
        }),
    );
  }
  const existed = existsSync(dir);
  await rm(dir, { recursive: true, force: true });
  // Which sprints passed describes hosts that are gone now. Kept, it made the next `dpgc up` render
  // sprint 3's routing (PgBouncer through HAProxy) during sprint 1, on hosts without HAProxy.
  await rm(statePathFor(inv.file), { force: true });
  return { stopped, removed: existed ? dir : undefined };
}

function rank(name: string): number {
  const i = STOP_ORDER.indexOf(name);
  return i === -1 ? STOP_ORDER.length : i;
}
