/**
 * The one interface to a host. Only transports (local.ts, ssh.ts) implement
 * it; everything else (components, checks, drills) goes through it, so
 * dry-run, redaction and error shape are decided once.
 */
export interface ExecOptions {
  /** Written to the command's stdin (the only way secrets reach a command). */
  input?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Milliseconds; default 120 000. */
  timeoutMs?: number;
  /** Run as this OS user (setpriv on the host; never `su -c` string building). */
  user?: string;
  /** Resolve with a non-zero exit instead of throwing CommandError. */
  allowFailure?: boolean;
  /**
   * Whether the command changes the host. Read-only commands (the default is
   * `true`: assume it mutates) still run under --dry-run; mutating ones are
   * printed and skipped.
   */
  mutates?: boolean;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
  /** True when --dry-run skipped the command. */
  skipped?: boolean;
}

export interface WriteFileOptions {
  mode: number;
  owner?: string;
  group?: string;
}

export interface FileChange {
  path: string;
  changed: boolean;
}

export interface Host {
  readonly name: string;
  readonly address: string;
  /** `local` or `ssh`. */
  readonly transport: string;
  readonly dryRun: boolean;
  /** argv, not a shell string: use ['sh', '-c', script] only where a shell is meant. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** undefined when the file does not exist. */
  readFile(path: string): Promise<string | undefined>;
  /**
   * Atomic (temp name + rename) write with owner and mode. Unchanged content,
   * mode and owner => `changed: false` and nothing is touched. Parent
   * directories are created (mode 0755, owned like the file).
   */
  writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<FileChange>;
  /** Close pooled connections. Idempotent. */
  close(): Promise<void>;
}
