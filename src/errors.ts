/**
 * The error hierarchy. Every failure the operator can meet is one of these;
 * the CLI boundary (src/cli/main.ts) maps them to exit codes in one place and
 * prints only the message (plus `hint`) unless --verbose.
 */
export const ExitCode = {
  ok: 0,
  criteriaFailed: 1,
  usage: 2,
  config: 3,
  host: 4,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class DpgcError extends Error {
  readonly exitCode: ExitCode = ExitCode.host;
  /** What the operator should do next, printed under the message. */
  readonly hint: string | undefined;
  constructor(message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.hint = opts.hint;
  }
}

/** Bad flags or arguments, or an answer missing where we may not prompt. */
export class UsageError extends DpgcError {
  override readonly exitCode = ExitCode.usage;
}

/** One problem found in a configuration file, with its position. */
export interface ConfigIssue {
  file: string;
  line?: number;
  column?: number;
  /** Dotted field path, e.g. `hosts[1].address`. */
  path: string;
  message: string;
}

export function formatIssue(i: ConfigIssue): string {
  const pos = i.line === undefined ? i.file : `${i.file}:${i.line}${i.column === undefined ? '' : `:${i.column}`}`;
  return `${pos}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/**
 * Another dpgc run holds the cluster's lock (src/lock.ts). Exit 2 like a
 * usage error: nothing was tried, and the same command will work once the
 * other run is done.
 */
export class LockedError extends DpgcError {
  override readonly exitCode = ExitCode.usage;
}

/** Inventory or secrets file is missing, unreadable, malformed or unsafe. */
export class ConfigError extends DpgcError {
  override readonly exitCode = ExitCode.config;
  readonly issues: ConfigIssue[];
  constructor(message: string, opts: { issues?: ConfigIssue[]; hint?: string; cause?: unknown } = {}) {
    const body = opts.issues?.length ? `${message}\n${opts.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}` : message;
    super(body, opts);
    this.issues = opts.issues ?? [];
  }
}

/** A host could not be reached, or a command on it failed. */
export class HostError extends DpgcError {
  override readonly exitCode = ExitCode.host;
}

/** A command on a host exited non-zero (or timed out). Carries redacted output. */
export class CommandError extends HostError {
  readonly host: string;
  readonly command: string;
  readonly exitCodeOfCommand: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  constructor(args: {
    host: string;
    command: string;
    exitCode: number | null;
    stdout: string;
    stderr: string;
    timedOut?: boolean;
    hint?: string;
  }) {
    const tail = lastLines(args.stderr.trim() || args.stdout.trim(), 8);
    const what = args.timedOut ? 'timed out' : `exited ${args.exitCode ?? 'by signal'}`;
    super(`${args.host}: \`${args.command}\` ${what}${tail ? `\n${indent(tail)}` : ''}`, args.hint === undefined ? {} : { hint: args.hint });
    this.host = args.host;
    this.command = args.command;
    this.exitCodeOfCommand = args.exitCode;
    this.stdout = args.stdout;
    this.stderr = args.stderr;
    this.timedOut = args.timedOut ?? false;
  }
}

/** Success criteria were measured and at least one required check failed. */
export class CriteriaError extends DpgcError {
  override readonly exitCode = ExitCode.criteriaFailed;
}

export class InterruptedError extends DpgcError {
  override readonly exitCode = ExitCode.interrupted;
}

export function lastLines(s: string, n: number): string {
  const lines = s.split('\n');
  return lines.slice(Math.max(0, lines.length - n)).join('\n');
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
