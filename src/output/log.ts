import chalk from 'chalk';
import { redact } from './redact.js';

/**
 * Human output goes to stderr, always; stdout is reserved for --json.
 * chalk honours NO_COLOR and non-TTY streams itself.
 */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** Only with --verbose. */
  debug(msg: string): void;
  /** What --dry-run would have done. */
  dry(msg: string): void;
}

export interface LoggerOptions {
  verbose?: boolean;
  quiet?: boolean;
  stream?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const write = (s: string) => stream.write(`${redact(s)}\n`);
  return {
    info: (m) => opts.quiet || write(m),
    warn: (m) => write(chalk.yellow(`warning: ${m}`)),
    error: (m) => write(chalk.red(m)),
    debug: (m) => opts.verbose && write(chalk.dim(m)),
    dry: (m) => write(chalk.cyan(`[dry-run] ${m}`)),
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {}, dry() {} };
