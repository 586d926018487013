import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { DpgcError, ExitCode, UsageError } from '../errors.js';
import { interruption } from '../interrupt.js';
import { redact } from '../output/redact.js';
import type { GlobalOptions } from '../context.js';

/**
 * The whole command line. Each action lazily imports its command module, so
 * `dpgc --help` loads neither ssh2, pg, etcd3 nor listr2.
 */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(ExitCode.interrupted);
    interrupted = true;
    process.stderr.write('\nInterrupted: finishing the current step, then stopping. Press Ctrl-C again to abort at once.\n');
    process.exitCode = ExitCode.interrupted;
    interruption.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = report(e, program.opts<{ verbose?: boolean }>().verbose ?? false);
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (interrupted) process.exitCode = ExitCode.interrupted;
}

function report(e: unknown, verbose: boolean): number {
  if (e instanceof CommanderError) {
    // Commander already printed its message; help and version exit 0.
    return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (e instanceof DpgcError) {
    process.stderr.write(`${redact(`error: ${e.message}`)}\n`);
    if (e.hint) process.stderr.write(`${redact(e.hint)}\n`);
    if (verbose && e.stack) process.stderr.write(`${redact(e.stack)}\n`);
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`${redact(`error: ${err.message}`)}\n`);
  process.stderr.write(verbose && err.stack ? `${redact(err.stack)}\n` : 'This is a bug in dpgc; run again with --verbose and report the stack trace.\n');
  return ExitCode.host;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Resolve global flags: flag, else DPGC_* environment, else default. */
export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ config?: string; json?: boolean; yes?: boolean; dryRun?: boolean; verbose?: boolean; acceptNewHostKeys?: boolean }>();
  const yes = o.yes ?? false;
  return {
    config: o.config ?? process.env['DPGC_CONFIG'] ?? 'dpgc.yaml',
    json: o.json ?? false,
    yes,
    dryRun: o.dryRun ?? false,
    verbose: o.verbose ?? false,
    acceptNewHostKeys: o.acceptNewHostKeys ?? false,
    nonInteractive: yes || process.env['CI'] === 'true' || !process.stdin.isTTY,
  };
}

function parseSprint(v: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`sprint must be a number from 0 to 5, got "${v}"`);
  const n = Number(v);
  if (n > 5) throw new UsageError(`there is no sprint ${n}: sprints are numbered 0 to 5`, { hint: 'Run `dpgc sprint --help` for what each sprint delivers.' });
  return n;
}

function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${name} must be a positive whole number, got "${v}"`);
    return Number(v);
  };
}

/** Durations like 300, 300s, 5m. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) throw new UsageError(`--duration must look like 30s, 5m or 300 (seconds), got "${v}"`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

export function buildProgram(): Command {
  const program = new Command('dpgc')
    .description('From bare Linux hosts to a verified, highly-available PostgreSQL cluster, in six gated sprints.')
    .version(version(), '-V, --version')
    .option('-c, --config <file>', 'inventory file (default: ./dpgc.yaml, or $DPGC_CONFIG)')
    .option('--json', 'print exactly one JSON document on stdout; human output stays on stderr')
    .option('-y, --yes', 'never prompt; a missing answer becomes a usage error')
    .option('--dry-run', 'print every command and file that would change a host; change nothing')
    .option('--accept-new-host-keys', 'trust SSH host keys seen for the first time (changed keys are always refused)')
    .option('--verbose', 'print commands as they run, and stack traces')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => process.stderr.write(s), writeErr: (s) => process.stderr.write(s) })
    .exitOverride();

  const lazy =
    <A extends unknown[]>(load: () => Promise<(cmd: Command, ...args: A) => Promise<void>>) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const fn = await load();
      await fn(cmd, ...(args.slice(0, -2) as A));
    };

  program
    .command('init')
    .description('guided first-time setup: write an inventory for your hosts')
    .option('--force', 'overwrite an existing inventory')
    .addHelpText('after', '\nExample:\n  dpgc init            # asks for cluster name and hosts\n  dpgc lab init        # or: a whole cluster on this machine')
    .action(lazy(async () => (await import('./commands/init.js')).initCommand));

  program
    .command('sprint')
    .description("run one sprint's tasks, after re-verifying the previous sprint's criteria")
    .argument('<n>', 'sprint number, 0-5', parseSprint)
    .option('--force', "run even though the previous sprint's criteria fail (recorded in the state file)")
    .addHelpText('after', '\nSprints: 0 PostgreSQL + vectors, 1 pooling + monitoring, 2 etcd + Patroni config + HAProxy,\n         3 HA cluster, 4 backups + PITR, 5 security\n\nExample:\n  dpgc sprint 0 -c dpgc.yaml')
    .action(lazy(async () => (await import('./commands/sprint.js')).sprintCommand));

  program
    .command('up')
    .description('run every implemented sprint in order, with gating (offers the lab when there is no inventory)')
    .addHelpText('after', '\nExample:\n  dpgc up --yes         # no inventory: creates the lab, then runs every sprint')
    .action(lazy(async () => (await import('./commands/up.js')).upCommand));

  program
    .command('verify')
    .description("measure sprint criteria on the live cluster; exit 0 only when all required checks pass")
    .option('--sprint <n>', 'verify one sprint', parseSprint)
    .option('--all', 'verify every implemented sprint')
    .option('--junit <file>', 'also write JUnit XML for CI')
    .addHelpText('after', '\nExample:\n  dpgc verify --all --junit reports/dpgc.xml')
    .action(lazy(async () => (await import('./commands/verify.js')).verifyCommand));

  program
    .command('status')
    .description('one view of the live cluster: members, replication, etcd, HAProxy, PgBouncer')
    .option('--watch [seconds]', 'refresh every N seconds (default 2)')
    .addHelpText('after', '\nExample:\n  dpgc status --json | jq .members')
    .action(lazy(async () => (await import('./commands/status.js')).statusCommand));

  program
    .command('pool-test')
    .description('N concurrent clients through PgBouncer running the application mix')
    .option('--agents <n>', 'concurrent clients', positiveInt('--agents'), 40)
    .option('--duration <d>', 'how long, e.g. 30s or 5m', parseDuration, 300)
    .addHelpText('after', '\nExample:\n  dpgc pool-test --agents 200 --duration 60s --json')
    .action(lazy(async () => (await import('./commands/pool-test.js')).poolTestCommand));

  program
    .command('failover-test')
    .description('failure drill: measure client-visible RTO and prove no acknowledged write is lost')
    .option('--mode <mode>', 'switchover | kill | stop | freeze | partition | etcd-member | replica', 'kill')
    .option('--repeat <n>', 'run N drills and report min/median/p95/max', positiveInt('--repeat'), 1)
    .option('--writers <n>', 'writer clients', positiveInt('--writers'), 4)
    .option('--readers <n>', 'reader clients', positiveInt('--readers'), 2)
    .addHelpText('after', '\nExample:\n  dpgc failover-test --mode kill --repeat 5 --json')
    .action(lazy(async () => (await import('./commands/failover-test.js')).failoverTestCommand));

  program
    .command('backup')
    .description('take a pgBackRest backup (sprint 4)')
    .option('--type <type>', 'full | incr | diff', 'incr')
    .action(lazy(async () => (await import('./commands/not-yet.js')).notYet('backup', 4)));

  program
    .command('readiness')
    .description('production readiness report (sprint 5)')
    .action(lazy(async () => (await import('./commands/not-yet.js')).notYet('readiness', 5)));

  program
    .command('schema')
    .description('print the inventory JSON Schema (for editor completion)')
    .action(lazy(async () => (await import('./commands/schema.js')).schemaCommand));

  const lab = program.command('lab').description('a whole cluster on this one machine, on loopback addresses');
  lab
    .command('init')
    .description('write a lab inventory: 3 database hosts + 1 control host on 127.0.0.x')
    .option('--dir <dir>', 'lab directory (default: .dpgc-lab beside the inventory)')
    .option('--subnet <prefix>', 'first three octets of the loopback addresses', '127.0.0')
    .option('--ssh', 'reach the lab hosts through sshd on their loopback addresses')
    .option('--force', 'overwrite an existing inventory')
    .addHelpText('after', '\nExample:\n  dpgc lab init && dpgc up')
    .action(lazy(async () => (await import('./commands/lab.js')).labInitCommand));
  lab
    .command('up')
    .description('create the lab inventory when missing, then run every implemented sprint')
    .option('--ssh', 'reach the lab hosts through sshd')
    .action(lazy(async () => (await import('./commands/lab.js')).labUpCommand));
  lab
    .command('down')
    .description('stop every lab process (by its pid file) and remove the lab directory')
    .action(lazy(async () => (await import('./commands/lab.js')).labDownCommand));

  return program;
}
