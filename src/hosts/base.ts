import { noteWould } from './observation.js';
import { createHash } from 'node:crypto';
import { CommandError } from '../errors.js';
import type { Logger } from '../output/log.js';
import { redact } from '../output/redact.js';
import { shellJoin } from './quote.js';
import type { ExecOptions, ExecResult, FileChange, Host, WriteFileOptions } from './types.js';

export interface RawRun {
  argv: readonly string[];
  input?: string | Buffer;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs: number;
}

export interface RawResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  timedOut: boolean;
}

export interface BaseHostOptions {
  name: string;
  address: string;
  dryRun: boolean;
  logger: Logger;
  /** Prefix mutating and privileged commands with `sudo -n` (non-root SSH users). */
  sudo?: boolean;
}

const DEFAULT_TIMEOUT_MS = 120_000;

/**
 * Everything a transport shares: user switching, sudo, dry-run, error shape,
 * and file I/O built on exec, so local and SSH hosts behave identically and a
 * transport only has to know how to run one argv.
 */
export abstract class BaseHost implements Host {
  abstract readonly transport: string;
  readonly name: string;
  readonly address: string;
  readonly dryRun: boolean;
  protected readonly logger: Logger;
  private readonly sudo: boolean;

  constructor(o: BaseHostOptions) {
    this.name = o.name;
    this.address = o.address;
    this.dryRun = o.dryRun;
    this.logger = o.logger;
    this.sudo = o.sudo ?? false;
  }

  protected abstract run(r: RawRun): Promise<RawResult>;
  abstract close(): Promise<void>;

  async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const full = this.wrap(argv, opts.user);
    const shown = redact(shellJoin(argv));
    if (this.dryRun && opts.mutates !== false) {
      const what = `run \`${shown}\`${opts.user ? ` as ${opts.user}` : ''}`;
      this.logger.dry(`${this.name}: would ${what}`);
      noteWould(what);
      return { stdout: '', stderr: '', exitCode: 0, durationMs: 0, skipped: true };
    }
    const started = Date.now();
    this.logger.debug(`${this.name}$ ${shown}`);
    const raw = await this.run({
      argv: full,
      ...(opts.input === undefined ? {} : { input: opts.input }),
      ...(opts.env === undefined ? {} : { env: opts.env }),
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
    const result: ExecResult = {
      stdout: raw.stdout,
      stderr: raw.stderr,
      exitCode: raw.exitCode ?? -1,
      durationMs: Date.now() - started,
    };
    if ((raw.exitCode !== 0 || raw.timedOut) && !opts.allowFailure) {
      throw new CommandError({
        host: this.name,
        command: shown,
        exitCode: raw.exitCode,
        stdout: redact(raw.stdout),
        stderr: redact(raw.stderr),
        timedOut: raw.timedOut,
      });
    }
    return result;
  }

  private wrap(argv: readonly string[], user: string | undefined): readonly string[] {
    let out = argv;
    // setpriv execs (no extra fork), so pids recorded by supervised services
    // are the daemon's own (docs/lab-facts.md).
    if (user && user !== 'root') out = ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', ...out];
    if (this.sudo) out = ['sudo', '-n', '--', ...out];
    return out;
  }

  async readFile(path: string): Promise<string | undefined> {
    // Why sh: tell "missing" (exit 3) from "unreadable" in one round trip; the path is "$1", never spliced in.
    const r = await this.exec(['sh', '-c', 'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi', 'sh', path], {
      mutates: false,
      allowFailure: true,
    });
    if (r.exitCode === 3) return undefined;
    if (r.exitCode !== 0) {
      throw new CommandError({ host: this.name, command: `cat ${path}`, exitCode: r.exitCode, stdout: '', stderr: r.stderr });
    }
    return r.stdout;
  }

  /**
   * What a dry run would change in a file, as a unified diff from the host's own
   * `diff` (a read: the new content goes in on stdin). Only for files every user
   * may read: a file of mode 0600 or 0640 may hold a secret, and its content
   * never reaches the output; nor does a binary one.
   */
  private async diffAgainst(path: string, content: string | Buffer, mode: number): Promise<string | undefined> {
    if ((mode & 0o004) === 0) return '(content not shown: the file is not readable by every user)';
    const text = typeof content === 'string' ? content : content.toString('utf8');
    if (text.includes('\0')) return undefined;
    const r = await this.exec(['diff', '-u', '--label', `${path} (now)`, '--label', `${path} (dpgc)`, '--new-file', '--', path, '-'], {
      mutates: false,
      allowFailure: true,
      input: text,
    });
    // 1: they differ (the diff); 0: same bytes (only mode or owner change); 2: diff could not read the file.
    // Redacted like every command line: a world-readable file should hold no secret, but output never trusts that.
    if (r.exitCode === 1) return redact(r.stdout.trimEnd());
    if (r.exitCode === 0) return '(content unchanged: mode or owner only)';
    return undefined;
  }

  async writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<FileChange> {
    const owner = opts.owner ?? 'root';
    const group = opts.group ?? owner;
    const mode = opts.mode.toString(8);
    const want = `${mode} ${owner} ${group} ${createHash('sha256').update(content).digest('hex')}`;
    // Why sh: mode, owner and hash in one round trip; the path is "$1", never spliced in.
    const cur = await this.exec(
      ['sh', '-c', 'if [ -f "$1" ]; then printf "%s " "$(stat -c "%a %U %G" -- "$1")"; sha256sum < "$1" | cut -d" " -f1; fi', 'sh', path],
      { mutates: false },
    );
    if (cur.stdout.trim() === want) return { path, changed: false };
    if (this.dryRun) {
      const diff = await this.diffAgainst(path, content, opts.mode);
      const what = `write ${path} (mode ${mode}, ${owner}:${group}, ${content.length} bytes)${diff ? `\n${diff}` : ''}`;
      this.logger.dry(`${this.name}: would ${what}`);
      noteWould(what);
      return { path, changed: true };
    }
    // Why sh: umask, temp file, chown, chmod and rename as one step; path, mode and owner are "$1".."$3", never spliced in.
    // umask 077 first: a secret must never exist, even briefly, readable by others.
    const script =
      'set -e; umask 077; d=$(dirname -- "$1"); [ -d "$d" ] || (umask 022; mkdir -p -- "$d"); ' +
      't="$1.dpgc-tmp.$$"; cat > "$t"; chown "$3" -- "$t"; chmod "$2" -- "$t"; mv -f -- "$t" "$1"';
    await this.exec(['sh', '-c', script, 'sh', path, mode, `${owner}:${group}`], { input: typeof content === 'string' ? content : content.toString('utf8') });
    return { path, changed: true };
  }
}
