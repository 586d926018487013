import { execa } from 'execa';
import { BaseHost, type BaseHostOptions, type RawResult, type RawRun } from './base.js';

/** Runs commands on this machine (the lab, or a control host managing itself). */
export class LocalHost extends BaseHost {
  readonly transport = 'local';

  constructor(o: BaseHostOptions) {
    super(o);
  }

  protected async run(r: RawRun): Promise<RawResult> {
    const [file, ...args] = r.argv;
    if (file === undefined) throw new Error('empty argv');
    const res = await execa(file, args, {
      reject: false,
      stripFinalNewline: false,
      timeout: r.timeoutMs,
      ...(r.input === undefined ? { stdin: 'ignore' as const } : { input: r.input }),
      ...(r.cwd === undefined ? {} : { cwd: r.cwd }),
      ...(r.env === undefined ? {} : { env: r.env }),
    });
    return {
      stdout: String(res.stdout ?? ''),
      stderr: String(res.stderr ?? '') || (res.failed && res.exitCode === undefined && !res.timedOut ? String(res.shortMessage ?? '') : ''),
      exitCode: res.exitCode ?? null,
      timedOut: Boolean(res.timedOut),
    };
  }

  async close(): Promise<void> {}
}
