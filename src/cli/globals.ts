import type { Command } from 'commander';
import type { GlobalOptions } from '../context.js';

/**
 * Global options, layered lowest to highest: built-in defaults, the inventory
 * file, `DPGC_*` environment, flags. The environment dpgc reads:
 *   DPGC_CONFIG         the inventory file, when -c/--config is not given
 *   DPGC_SECRET_<NAME>  a secret instead of the secrets file (src/config/secrets.ts)
 *   CI                  set (and not "false"/"0"): never prompt, like --yes without the yes
 *   NO_COLOR            no colour (honoured by chalk)
 */
export function globals(cmd: Command, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  const o = cmd.optsWithGlobals<{ config?: string; json?: boolean; yes?: boolean; dryRun?: boolean; verbose?: boolean; acceptNewHostKeys?: boolean }>();
  const yes = o.yes ?? false;
  return {
    config: o.config ?? (env['DPGC_CONFIG'] || undefined) ?? 'dpgc.yaml',
    json: o.json ?? false,
    yes,
    dryRun: o.dryRun ?? false,
    verbose: o.verbose ?? false,
    acceptNewHostKeys: o.acceptNewHostKeys ?? false,
    nonInteractive: yes || isCi(env) || !process.stdin.isTTY,
  };
}

function isCi(env: NodeJS.ProcessEnv): boolean {
  const ci = env['CI'];
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}
