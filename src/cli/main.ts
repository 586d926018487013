import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { ConfigError, DpgcError, ExitCode, UsageError } from '../errors.js';
import { interruption } from '../interrupt.js';
import { emitJson, jsonEmitted } from '../output/json.js';
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
    const o = program.opts<{ verbose?: boolean; json?: boolean }>();
    process.exitCode = report(e, { verbose: o.verbose ?? false, json: o.json ?? argv.includes('--json') });
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (interrupted) process.exitCode = ExitCode.interrupted;
}

/**
 * The one place an error becomes an exit code (see ExitCode in src/errors.ts).
 * Humans get the message and what to do on stderr, a stack trace only with
 * --verbose; a --json run that failed before printing its document prints
 * the error as its one JSON document.
 */
function report(e: unknown, o: { verbose: boolean; json: boolean }): number {
  let code: number;
  let doc: { type: string; message: string; hint?: string; issues?: unknown[] };
  if (e instanceof CommanderError) {
    // Commander already printed its message (and a "Did you mean" when it has one); help and version exit 0.
    if (e.exitCode === 0) return ExitCode.ok;
    code = ExitCode.usage;
    doc = { type: 'UsageError', message: e.message.replace(/^error: /, '') };
  } else if (e instanceof DpgcError) {
    process.stderr.write(`${redact(`error: ${e.message}`)}\n`);
    if (e.hint) process.stderr.write(`${redact(e.hint)}\n`);
    if (o.verbose && e.stack) process.stderr.write(`${redact(e.stack)}\n`);
    code = e.exitCode;
    doc = { type: e.name, message: e.message, ...(e.hint ? { hint: e.hint } : {}), ...(e instanceof ConfigError && e.issues.length ? { issues: e.issues } : {}) };
  } else {
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`${redact(`error: ${err.message}`)}\n`);
    process.stderr.write(o.verbose && err.stack ? `${redact(err.stack)}\n` : 'This is a bug in dpgc; run again with --verbose and report the stack trace.\n');
    code = ExitCode.host;
    doc = { type: 'InternalError', message: err.message };
  }
  if (o.json && !jsonEmitted()) emitJson({ ok: false, exitCode: code, error: doc });
  return code;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * Global options, layered lowest to highest: built-in defaults, the inventory
 * file, `DPGC_*` environment, flags. The environment dpgc reads:
 *   DPGC_CONFIG         the inventory file, when -c/--config is not given
 *   DPGC_SECRET_<NAME>  a secret instead of the secrets file (src/config/secrets.ts)
 *   CI                  set (and not "false"/"0"): never prompt, like --yes without the yes
 *   NO_COLOR            no colour (honoured by chalk)
 */
export function globals(cmd: Command, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  const o = cmd.optsWithGlobals<{ config?: string; json?: boolean; yes?: boolean; dryRun?: boolean; verbose?: boolean; acceptNewHostKeys?: boolean }>();
  const yes = o.yes ?? false;
  return {
    config: o.config ?? (env['DPGC_CONFIG'] || undefined) ?? 'dpgc.yaml',
    json: o.json ?? false,
    yes,
    dryRun: o.dryRun ?? false,
    verbose: o.verbose ?? false,
    acceptNewHostKeys: o.acceptNewHostKeys ?? false,
    nonInteractive: yes || isCi(env) || !process.stdin.isTTY,
  };
}

function isCi(env: NodeJS.ProcessEnv): boolean {
  const ci = env['CI'];
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

function sprintNumber(label: string) {
  return (v: string): number => {
    const hint = 'Run `dpgc sprint --help` for what each sprint delivers.';
    if (!/^\d+$/.test(v)) throw new UsageError(`${label} must be a number from 0 to 5, got "${v}"`, { hint });
    const n = Number(v);
    if (n > 5) throw new UsageError(`there is no sprint ${n}: sprints are numbered 0 to 5`, { hint });
    return n;
  };
}

function positiveInt(name: string, example: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${name} must be a whole number of 1 or more, got "${v}"`, { hint: `For example: ${name} ${example}.` });
    return Number(v);
  };
}

/** Durations like 300, 300s, 5m. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m || Number(m[1]) === 0) throw new UsageError(`--duration must be a length of time such as 30s, 5m or 300 (seconds), got "${v}"`, { hint: 'For example: --duration 60s.' });
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

/** Every command's help ends with a runnable example. */
function example(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

const EXIT_CODES = 'Exit codes: 0 success, 1 criteria not met, 2 usage error, 3 configuration error,\n            4 a host or command failed, 130 interrupted.';

export function buildProgram(): Command {
  // Descriptions stay under ~50 characters so `dpgc --help` shows one line per command at 80 columns.
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
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: true })
    // Help and version asked for are the command's output (`dpgc --help | less`,
    // `v=$(dpgc --version)`), so stdout, as every CLI does; usage errors and the
    // help printed after them go to stderr with the other human messages.
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s), getOutHelpWidth: () => process.stdout.columns || 80 })
    .addHelpText('after', `\nExamples:\n  dpgc lab init && dpgc up     # a whole cluster on this machine\n  dpgc sprint 0 -c prod.yaml   # one sprint on your hosts\n\n${EXIT_CODES}`)
    .exitOverride();

  const lazy =
    <A extends unknown[]>(load: () => Promise<(cmd: Command, ...args: A) => Promise<void>>) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const fn = await load();
      await fn(cmd, ...(args.slice(0, -2) as A));
    };

  example(
    program.command('init').description('write an inventory for your hosts, by questions').option('--force', 'overwrite an existing inventory'),
    'dpgc init            # asks for cluster name and hosts',
    'dpgc lab init        # or: a whole cluster on this machine',
  ).action(lazy(async () => (await import('./commands/init.js')).initCommand));

  example(
    program
      .command('sprint')
      .description("run one sprint, gated on the previous one's criteria")
      .argument('<n>', 'sprint number, 0-5', sprintNumber('the sprint'))
      .option('--force', "run even though the previous sprint's criteria fail (recorded in the state file)")
      .addHelpText('after', '\nSprints: 0 PostgreSQL + vectors, 1 pooling + monitoring, 2 etcd + Patroni config + HAProxy,\n         3 HA cluster, 4 backups + PITR, 5 security'),
    'dpgc sprint 0 -c dpgc.yaml',
  ).action(lazy(async () => (await import('./commands/sprint.js')).sprintCommand));

  example(
    program.command('up').description('run every implemented sprint in order, with gating'),
    'dpgc up --yes         # no inventory: creates the lab, then runs every sprint',
  ).action(lazy(async () => (await import('./commands/up.js')).upCommand));

  example(
    program
      .command('verify')
      .description('measure sprint criteria on the live cluster')
      .option('--sprint <n>', 'verify one sprint', sprintNumber('--sprint'))
      .option('--all', 'verify every implemented sprint')
      .option('--junit <file>', 'also write JUnit XML for CI')
      .addHelpText('after', '\nExits 0 only when every required check passes.'),
    'dpgc verify --all --junit reports/dpgc.xml',
  ).action(lazy(async () => (await import('./commands/verify.js')).verifyCommand));

  example(
    program
      .command('status')
      .description('the live cluster: members, lag, etcd, HAProxy')
      .option('--watch [seconds]', 'refresh every N seconds (default 2)'),
    'dpgc status --json | jq .members',
  ).action(lazy(async () => (await import('./commands/status.js')).statusCommand));

  example(
    program
      .command('pool-test')
      .description('N concurrent clients through PgBouncer')
      .option('--agents <n>', 'concurrent clients', positiveInt('--agents', 40), 40)
      .option('--duration <d>', 'how long, e.g. 30s or 5m', parseDuration, 300),
    'dpgc pool-test --agents 200 --duration 60s --json',
  ).action(lazy(async () => (await import('./commands/pool-test.js')).poolTestCommand));

  example(
    program
      .command('failover-test')
      .description('failure drill: RTO measured, no write lost')
      .option('--mode <mode>', 'switchover | kill | stop | freeze | partition | etcd-member | replica', 'kill')
      .option('--repeat <n>', 'run N drills and report min/median/p95/max', positiveInt('--repeat', 5), 1)
      .option('--writers <n>', 'writer clients', positiveInt('--writers', 4), 4)
      .option('--readers <n>', 'reader clients', positiveInt('--readers', 2), 2),
    'dpgc failover-test --mode kill --repeat 5 --json',
  ).action(lazy(async () => (await import('./commands/failover-test.js')).failoverTestCommand));

  example(
    program.command('backup').description('take a pgBackRest backup (sprint 4)').option('--type <type>', 'full | incr | diff', 'incr'),
    'dpgc backup --type full',
  ).action(lazy(async () => (await import('./commands/not-yet.js')).notYet('backup', 4)));

  example(program.command('readiness').description('production readiness report (sprint 5)'), 'dpgc readiness --json > readiness.json').action(
    lazy(async () => (await import('./commands/not-yet.js')).notYet('readiness', 5)),
  );

  example(
    program.command('schema').description('print the inventory JSON Schema, for editors'),
    'dpgc schema > dpgc.schema.json',
    '# then, first line of dpgc.yaml:  # yaml-language-server: $schema=./dpgc.schema.json',
  ).action(lazy(async () => (await import('./commands/schema.js')).schemaCommand));

  const lab = example(program.command('lab').description('init | up | down: a cluster on this machine'), 'dpgc lab init && dpgc up', 'dpgc lab down --yes');
  example(
    lab
      .command('init')
      .description('write a lab inventory: 3 database hosts + 1 control host on 127.0.0.x')
      .option('--dir <dir>', 'lab directory (default: .dpgc-lab beside the inventory)')
      .option('--subnet <prefix>', 'first three octets of the loopback addresses', '127.0.0')
      .option('--ssh', 'reach the lab hosts through sshd on their loopback addresses')
      .option('--force', 'overwrite an existing inventory'),
    'dpgc lab init && dpgc up',
  ).action(lazy(async () => (await import('./commands/lab.js')).labInitCommand));
  example(
    lab.command('up').description('create the lab inventory when missing, then run every implemented sprint').option('--ssh', 'reach the lab hosts through sshd'),
    'dpgc lab up --ssh',
  ).action(lazy(async () => (await import('./commands/lab.js')).labUpCommand));
  example(lab.command('down').description('stop every lab process (by its pid file) and remove the lab directory'), 'dpgc lab down --yes').action(
    lazy(async () => (await import('./commands/lab.js')).labDownCommand),
  );

  return program;
}
