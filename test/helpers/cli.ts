import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/dpgc.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a process, the way an operator or CI does (non-interactive). */
export async function dpgc(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  const r = await execa('node', [BIN, ...args], {
    reject: false,
    env: { CI: 'true', NO_COLOR: '1', ...opts.env },
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    timeout: opts.timeoutMs ?? 600_000,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/**
 * stderr, and for a `--json` run the detail of every criterion that failed:
 * with --json the human output names only the failing ids, and a test that
 * fails in CI must say why without a re-run.
 */
export function explain(r: CliResult): string {
  let failed = '';
  try {
    const doc = JSON.parse(r.stdout) as { results?: { id: string; verdict: string; detail?: string }[] };
    failed = (doc.results ?? []).filter((x) => x.verdict === 'fail').map((x) => `${x.id}: ${x.detail ?? ''}`).join('\n');
  } catch {
    // not JSON: stderr is the whole story
  }
  return failed ? `${r.stderr}\nfailed criteria:\n${failed}` : r.stderr;
}
