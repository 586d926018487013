import type { GlobalOptions } from '../context.js';
import { UsageError } from '../errors.js';

/**
 * The only place dpgc asks a question. With --yes the answer is yes; in CI
 * or without a TTY a question is a usage error naming the flag that answers it.
 */
export async function confirm(o: Pick<GlobalOptions, 'yes' | 'nonInteractive'>, message: string, flag = '--yes'): Promise<boolean> {
  if (o.yes) return true;
  if (o.nonInteractive) throw new UsageError(`${message} — cannot ask: not interactive (CI or no TTY)`, { hint: `Pass ${flag} to answer yes.` });
  const { confirm: ask } = await import('@inquirer/prompts');
  return ask({ message, default: false }, { output: process.stderr });
}

export async function askText(o: Pick<GlobalOptions, 'nonInteractive'>, message: string, flag: string, def?: string, validate?: (v: string) => string | true): Promise<string> {
  if (o.nonInteractive) {
    if (def !== undefined) return def;
    throw new UsageError(`${message} — cannot ask: not interactive (CI or no TTY)`, { hint: `Pass ${flag}.` });
  }
  const { input } = await import('@inquirer/prompts');
  return input({ message, ...(def === undefined ? {} : { default: def }), ...(validate ? { validate } : {}) }, { output: process.stderr });
}
