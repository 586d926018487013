import type { GlobalOptions } from '../context.js';
import type { Inventory } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { interruptedAtQuestion } from './wizard/prompts.js';

/**
 * The only place dpgc asks a question. With --yes the answer is yes; in CI
 * or without a TTY a question is a usage error naming the flag that answers it.
 */
export async function confirm(o: Pick<GlobalOptions, 'yes' | 'nonInteractive'>, message: string, flag = '--yes'): Promise<boolean> {
  if (o.yes) return true;
  if (o.nonInteractive) throw new UsageError(`${message} — cannot ask: not interactive (CI or no TTY)`, { hint: `Pass ${flag} to answer yes.` });
  const { confirm: ask } = await import('@inquirer/prompts');
  return ask({ message, default: false }, { output: process.stderr }).catch(interruptedAtQuestion);
}

export async function askText(o: Pick<GlobalOptions, 'nonInteractive'>, message: string, flag: string, def?: string, validate?: (v: string) => string | true): Promise<string> {
  if (o.nonInteractive) {
    if (def !== undefined) return def;
    throw new UsageError(`${message} — cannot ask: not interactive (CI or no TTY)`, { hint: `Pass ${flag}.` });
  }
  const { input } = await import('@inquirer/prompts');
  return input({ message, ...(def === undefined ? {} : { default: def }), ...(validate ? { validate } : {}) }, { output: process.stderr }).catch(interruptedAtQuestion);
}

/**
 * Before something that disrupts or rewrites the live cluster: a lab is fair
 * game, a real cluster needs its name typed (or --yes). `refused` says what
 * was not done.
 */
export async function confirmClusterName(ctx: { inventory: Pick<Inventory, 'cluster' | 'lab'>; options: Pick<GlobalOptions, 'yes' | 'nonInteractive'> }, what: string, refused: string): Promise<void> {
  if (ctx.inventory.lab || ctx.options.yes) return;
  const name = ctx.inventory.cluster;
  const typed = await askText(ctx.options, `${what} "${name}". Type the cluster name to go on`, '--yes to go on without confirmation');
  if (typed.trim() !== name) throw new UsageError(`"${typed.trim()}" is not "${name}": ${refused}`);
}
