import type { Inventory } from './config/schema.js';
import type { Secrets } from './config/secrets.js';
import type { HostPool } from './hosts/pool.js';
import type { Logger } from './output/log.js';

/** Global flags every command receives. */
export interface GlobalOptions {
  config: string;
  json: boolean;
  yes: boolean;
  dryRun: boolean;
  verbose: boolean;
  acceptNewHostKeys: boolean;
  /** True when nothing may prompt: --yes, CI=true, or no TTY. */
  nonInteractive: boolean;
}

/**
 * What a sprint, check or drill may use. Steps take only the part they need
 * (`Pick<RunContext, 'pool' | 'secrets'>`), which keeps them testable.
 */
export interface RunContext {
  inventory: Inventory;
  secrets: Secrets;
  pool: HostPool;
  logger: Logger;
  options: GlobalOptions;
  /**
   * `dpgc rotate --certs`: every certificate issued before this moment is
   * issued again by whichever step ensures it (components/ca.ts).
   */
  reissueCertsBefore?: Date;
}
