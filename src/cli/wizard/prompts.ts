import { InterruptedError, UsageError } from '../../errors.js';

/**
 * The questions a wizard may ask, in @inquirer/prompts' own shapes. The
 * wizards take this as a parameter, so tests drive the real prompts through
 * @inquirer/testing (test/unit/wizard-*.test.ts) and the CLI passes
 * `terminalPrompts()`.
 */
export interface Choice<T extends string> {
  name: string;
  value: T;
  description?: string;
}

export interface Prompts {
  input(c: { message: string; default?: string; validate?: (v: string) => string | true }): Promise<string>;
  confirm(c: { message: string; default?: boolean }): Promise<boolean>;
  select<T extends string>(c: { message: string; choices: Choice<T>[]; default?: T }): Promise<T>;
  checkbox<T extends string>(c: { message: string; choices: (Choice<T> & { checked?: boolean })[]; validate?: (v: readonly { value: T }[]) => string | true }): Promise<T[]>;
  /** A line for the operator between questions (stderr). */
  say(line: string): void;
}

/** Ctrl-C at a question: inquirer rejects with ExitPromptError; dpgc exits 130 having written nothing. */
export function interruptedAtQuestion(e: unknown): never {
  if (e instanceof Error && e.name === 'ExitPromptError') throw new InterruptedError('interrupted at a question; nothing was written');
  throw e;
}

/** The real prompts, on stderr (stdout is --json's). */
export async function terminalPrompts(): Promise<Prompts> {
  const p = await import('@inquirer/prompts');
  const ctx = { output: process.stderr };
  const guard = <T>(r: Promise<T>): Promise<T> => r.catch(interruptedAtQuestion);
  return {
    input: (c) => guard(p.input(c, ctx)),
    confirm: (c) => guard(p.confirm(c, ctx)),
    select: (c) => guard(p.select(c, ctx)),
    checkbox: (c) => guard(p.checkbox({ ...c, ...(c.validate ? { validate: c.validate } : {}) }, ctx)),
    say: (line) => process.stderr.write(`${line}\n`),
  };
}

/**
 * `a flag, else a prompt when interactive, else a default, else a usage
 * error naming the flag` (house style), for one answer. `check` is the
 * schema's verdict on a value (one source of truth for prompt and flag).
 */
export interface Question {
  message: string;
  /** The flag that answers it without a prompt, e.g. `--cluster`. */
  flag: string;
  /** The flag's value, when given. */
  given?: string | undefined;
  default?: string;
  check?: (v: string) => string | undefined;
}

export async function answer(prompts: Prompts | undefined, q: Question): Promise<string> {
  if (q.given !== undefined) {
    const p = q.check?.(q.given);
    if (p) throw new UsageError(`${q.flag} ${q.given}: ${p}`);
    return q.given;
  }
  if (!prompts) {
    if (q.default !== undefined) return q.default;
    throw new UsageError(`${q.message} — cannot ask: not interactive (--yes, CI or no TTY)`, { hint: `Pass ${q.flag}.` });
  }
  return prompts.input({ message: q.message, ...(q.default === undefined ? {} : { default: q.default }), ...(q.check ? { validate: (v: string) => q.check?.(v) ?? true } : {}) });
}
