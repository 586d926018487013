import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { ConfigError, DpgcError, ExitCode, UsageError } from '../errors.js';
import { interruption, undoHeld } from '../interrupt.js';
import { emitJson, jsonEmitted } from '../output/json.js';
import { redact } from '../output/redact.js';

/**
 * The whole command line. Each action lazily imports its command module, so
 * `dpgc --help` loads neither ssh2, pg, etcd3 nor listr2.
 */
export async function main(argv: string[]): Promise<void> {
  // grpc-js (etcd3: the run lock) gives an etcd member's address as the TLS server name, and Node warns
  // (DEP0123) that an IP address there is left out of the handshake's SNI. The certificate is still checked
  // against that address (the member's IP SAN): nothing for an operator to act on, so not printed.
  dropWarning('DEP0123');
  const program = buildProgram();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) {
      // Aborting at once still undoes what must not outlive the run (a paused PgBouncer).
      void undoHeld(10_000).then((done) => {
        if (done.length) process.stderr.write(`Aborted once it was safe to: ${done.join('; ')}.\n`);
        process.exit(ExitCode.interrupted);
      });
      return;
    }
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

/** Node's warnings with this code are not printed (every other warning is). */
function dropWarning(code: string): void {
  const emit = process.emitWarning.bind(process) as (...a: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const o = rest[0];
    const c = o !== null && typeof o === 'object' ? (o as { code?: unknown }).code : rest[1];
    if (c !== code) emit(warning, ...rest);
  });
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
    program
      .command('init')
      .description('write an inventory for your hosts, by questions')
      .option('--force', 'overwrite an existing inventory')
      // Every answer as a flag, for runs that cannot ask (--yes, CI, no TTY); each is checked like the prompt's answer.
      .option('--cluster <name>', 'cluster name (default main)')
      .option('--host <host...>', 'a host: DNS name or IPv4 address (repeat; at least 3)')
      .option('--ssh-user <user>', 'SSH user (default root; another user needs passwordless sudo)')
      .option('--ssh-key <file>', 'SSH private key (default ~/.ssh/id_ed25519)')
      .option('--ssh-port <port>', 'SSH port (default 22)')
      .option('--known-hosts <file>', 'known_hosts file (default ~/.ssh/known_hosts)')
      .option('--timings <profile>', 'fast | balanced | safe (default balanced)')
      .option('--vector <engine>', 'pgvector | ruvector (default pgvector)')
      .option('--backup-host <host>', 'the pgBackRest repository host: a host without postgres, or another one')
      .option('--retention-full <n>', 'full backups to keep (default 2)')
      .option('--backup-schedule <s>', 'an interval (1d, 6h) or systemd OnCalendar (daily); default 1d')
      .option('--ca-cert <file>', "your CA's certificate (with --ca-key; default: dpgc makes its own CA)")
      .option('--ca-key <file>', "your CA's private key"),
    'dpgc init            # asks, checking each host over SSH as you enter it',
    'dpgc init --yes --host db1.example.com --host 10.0.0.12 --host 10.0.0.13 --accept-new-host-keys',
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
    program
      .command('plan')
      .description('show what sprint N would change, changing nothing')
      .argument('[n]', 'sprint number, 0-5 (default: the first sprint not yet passed)', sprintNumber('the sprint')),
    'dpgc plan 1 --json',
  ).action(lazy(async () => (await import('./commands/plan.js')).planCommand));

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
      .option('--quick', 'state only (processes, roles, routing, replication state): no load, in seconds')
      .option('--junit <file>', 'also write JUnit XML for CI')
      .addHelpText('after', '\nExits 0 only when every required check passes. --quick combines with --sprint or --all.'),
    'dpgc verify --all --junit reports/dpgc.xml',
    'dpgc verify --quick     # before a deploy, in a health probe',
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
      // No default: a drill disrupts the cluster, so the operator says which one.
      .option('--mode <mode>', 'required: switchover | kill | crash | stop | freeze | partition | etcd-member | replica')
      .option('--repeat <n>', 'run N drills and report min/median/p95/max', positiveInt('--repeat', 5), 1)
      .option('--writers <n>', 'writer clients', positiveInt('--writers', 4), 4)
      .option('--readers <n>', 'reader clients', positiveInt('--readers', 2), 2)
      .option('--stall <seconds>', 'freeze, partition: how long the victim stays stopped or cut off (default 2 × ttl)', positiveInt('--stall', 40))
      .option('--html <file>', 'also write the HTML report with the drills\' timelines (no readiness measurement)'),
    'dpgc failover-test --mode kill --repeat 5 --json',
  ).action(lazy(async () => (await import('./commands/failover-test.js')).failoverTestCommand));

  const backup = example(
    program
      .command('backup')
      .description('take, list or mark pgBackRest backups')
      .addHelpText('after', '\nA backup is taken from a standby. A second backup while one runs is refused (exit 2).'),
    'dpgc backup                 # incremental (full when the repository has none)',
    'dpgc backup list --json',
    'dpgc backup mark before-migration-42',
  );
  example(
    backup.command('run', { isDefault: true }).description('take a backup now (the default action)').option('--type <type>', 'full | diff | incr (default: incr, or full when there is none)'),
    'dpgc backup --type full',
  ).action(lazy(async () => (await import('./commands/backup.js')).backupCommand));
  example(backup.command('list').description('the backups in the repository (type, times, size, WAL range)'), 'dpgc backup list --json').action(
    lazy(async () => (await import('./commands/backup.js')).backupListCommand),
  );
  example(backup.command('mark').description('create a named restore point on the leader').argument('<name>', 'letters, digits and . _ -'), 'dpgc backup mark before-migration-42').action(
    lazy(async () => (await import('./commands/backup.js')).backupMarkCommand),
  );

  example(
    program
      .command('restore')
      .description('point-in-time restore: scratch copy or in place')
      .option('--target-time <time>', 'ISO 8601, e.g. 2026-12-02T08:15:00Z (no offset means UTC)')
      .option('--target-lsn <lsn>', 'a WAL position, e.g. 0/5A000060')
      .option('--target-name <name>', 'a restore point made by `dpgc backup mark`')
      .option('--scratch', 'restore into a new instance on the backup host (port ports.restore_scratch); the cluster is untouched')
      .option('--keep', 'keep the scratch instance running for you to copy data out')
      .option('--in-place', 'the whole cluster back to the target: writes after it are lost (typed confirmation off a lab, or --yes)')
      .option('--drop-scratch', 'stop and remove a kept scratch instance'),
    'dpgc restore --target-time 2026-12-02T08:15:00Z --scratch --keep',
    'dpgc restore --target-name before-migration-42 --scratch',
    'dpgc restore --target-time 2026-12-02T08:15:00Z --in-place --yes',
  ).action(lazy(async () => (await import('./commands/restore.js')).restoreCommand));

  example(
    program
      .command('rotate')
      .description('new passwords or certificates, no client refused')
      .option('--role <name...>', 'a role (or its secret) to rotate: app_user, readonly_user, dpg_cluster, shared_user, dpgc_monitor, pgbouncer_admin, replicator, rewind_user, postgres, patroni (REST), haproxy_stats')
      .option('--all', 'every password dpgc generated and can rotate')
      .option('--certs', 'issue every certificate again (the CA stays), loaded without restarting PostgreSQL or PgBouncer')
      .option('--pause-timeout <seconds>', 'longest wait for open transactions before PgBouncer is paused (then nothing changes)', positiveInt('--pause-timeout', 10), 10)
      .addHelpText('after', '\nThe new password is recorded as pending in the secrets file first: an interrupted rotation is completed\nby the next `dpgc rotate`, with the same value. See README "Rotating credentials" for the order of each.'),
    'dpgc rotate --role app_user',
    'dpgc rotate --all --json',
    'dpgc rotate --certs',
  ).action(lazy(async () => (await import('./commands/rotate.js')).rotateCommand));

  example(
    program
      .command('readiness')
      .description('ready for production? every criterion, live')
      .option('--junit <file>', 'also write a JUnit XML report (waived items as skipped)')
      .option('--html <file>', 'also write the HTML report (as `dpgc report`)'),
    'dpgc readiness --json > readiness.json',
  ).action(lazy(async () => (await import('./commands/readiness.js')).readinessCommand));

  example(
    program
      .command('report')
      .description('one HTML file: topology, readiness, drills, backups')
      .option('--html <file>', 'required: the file to write (self-contained: no network fetch)')
      .option('--no-readiness', 'leave out the live readiness measurement (seconds instead of minutes)'),
    'dpgc report --html cluster-report.html',
  ).action(lazy(async () => (await import('./commands/report.js')).reportCommand));

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
