import type { Command } from 'commander';
import { loadInventory } from '../config/load.js';
import { Secrets, secretsPathFor } from '../config/secrets.js';
import type { RunContext } from '../context.js';
import { HostPool } from '../hosts/pool.js';
import { createLogger } from '../output/log.js';
import { globals } from './main.js';

/** Load inventory, secrets and hosts for a command; always closes connections. */
export async function withContext<T>(cmd: Command, fn: (ctx: RunContext) => Promise<T>): Promise<T> {
  const options = globals(cmd);
  const logger = createLogger({ verbose: options.verbose });
  const inventory = await loadInventory(options.config);
  const secrets = new Secrets(secretsPathFor(inventory.file), { dryRun: options.dryRun });
  await secrets.check();
  const pool = new HostPool(inventory, { dryRun: options.dryRun, logger, acceptNewHostKeys: options.acceptNewHostKeys });
  try {
    return await fn({ inventory, secrets, pool, logger, options });
  } finally {
    await pool.close();
  }
}

/** The one JSON document of a --json run. */
export { emitJson } from '../output/json.js';
