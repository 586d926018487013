import { CommandError, HostError, lastLines } from '../errors.js';
import type { HostSpec } from '../config/schema.js';
import { ENV_NAME, EnvFileError, parseEnvFile } from './env-file.js';
import { assertOwnedPath } from './owned.js';
import { shellJoin } from './quote.js';
import { superviseArgv } from './supervise.js';
import type { Host } from './types.js';
import { render } from '../templates.js';
import { waitUntil } from '../wait.js';

/**
 * Service control: systemd units where the host has systemd, otherwise a
 * supervised process (setsid + setpriv, pid file, log file). Either way a
 * start is confirmed by the process being alive *and* its port answering:
 * docs/lab-facts.md records daemons that exit 0 and die a moment later.
 */
export interface ServiceSpec {
  /** Short name; the unit is `dpgc-<name>`, the pid file `<runDir>/<name>.pid`. */
  name: string;
  user: string;
  argv: string[];
  /** KEY=VALUE file (mode 0600) whose variables reach the daemon: the way secrets travel to it. */
  envFile?: string;
  /** Non-secret environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Where the daemon must answer before the start counts. */
  listen?: { address: string; port: number };
  nofile?: number;
  /**
   * `always`: started again a second after it exits, however it exits (systemd
   * `Restart=always`; in the lab the restart loop of supervise.ts).
   */
  restart?: 'always';
  /**
   * `process`: stopping the service signals its main process only (systemd
   * `KillMode=process`), for a daemon that manages children which must outlive
   * it (Patroni paused leaves PostgreSQL running). Otherwise `mixed`.
   */
  killMode?: 'process';
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
}

export interface ServiceDirs {
  runDir: string;
  logDir: string;
}

export type ServiceState = { running: true; pid: number } | { running: false; reason: string };

export interface ServiceManager {
  /** Ensure running; `changed` when it had to be started. */
  start(s: ServiceSpec): Promise<{ changed: boolean; pid?: number }>;
  stop(s: Pick<ServiceSpec, 'name' | 'stopTimeoutMs'>): Promise<{ changed: boolean }>;
  restart(s: ServiceSpec): Promise<void>;
  /** SIGHUP: config reload. */
  reload(s: Pick<ServiceSpec, 'name'>): Promise<void>;
  status(s: Pick<ServiceSpec, 'name'>): Promise<ServiceState>;
  /** The log's last lines, for error messages. */
  logTail(name: string, lines?: number): Promise<string>;
}

export function serviceManager(host: Host, spec: Pick<HostSpec, 'services'>, dirs: ServiceDirs): ServiceManager {
  return spec.services === 'systemd' ? new SystemdServices(host, dirs) : new SupervisedServices(host, dirs);
}

async function waitListening(host: Host, s: ServiceSpec, alive: () => Promise<ServiceState>, logTail: () => Promise<string>): Promise<void> {
  if (host.dryRun) return;
  const timeoutMs = s.startTimeoutMs ?? 30_000;
  await waitUntil(
    async () => {
      const st = await alive();
      if (!st.running) {
        throw new HostError(`${host.name}: ${s.name} exited right after start (${st.reason})\n${await logTail()}`, {
          hint: `Read the whole log on ${host.name} and fix what it says, then run the command again.`,
        });
      }
      return !s.listen || (await portOpen(host, s.listen.address, s.listen.port));
    },
    {
      timeoutMs,
      everyMs: 250,
      timeoutError: async () => new HostError(`${host.name}: ${s.name} is running but not listening on ${s.listen?.address}:${s.listen?.port} after ${timeoutMs / 1000}s\n${await logTail()}`),
    },
    `${s.name} on ${host.name} listening`,
  );
}

/** Probed from the host itself, so it works over SSH as well as locally. */
export async function portOpen(host: Host, address: string, port: number): Promise<boolean> {
  // Why bash: its /dev/tcp is the one TCP client every host has; address and port are "$1" and "$2", never spliced in.
  const r = await host.exec(['timeout', '2', 'bash', '-c', 'exec 3<>"/dev/tcp/$1/$2"', 'bash', address, String(port)], { mutates: false, allowFailure: true });
  return r.exitCode === 0;
}

/** Where the start script finds its tools, and the daemons' default PATH. */
const TOOL_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * `pid_alive FILE`: prints the pid and succeeds when the pid file's process
 * runs. The file holds "pid starttime": a pid reused by an unrelated process
 * after a reboot or crash has another start time, and is never signalled.
 * Field 22 of /proc/<pid>/stat is the start time; after ") " it is the 20th.
 */
const PID_ALIVE = [
  'pid_alive() {',
  '  [ -f "$1" ] || { echo "no pid file"; return 1; }',
  '  read -r pa_p pa_t < "$1" || true',
  '  case $pa_p in ""|*[!0-9]*) echo "pid file holds no pid"; return 1;; esac',
  '  [ -r "/proc/$pa_p/stat" ] || { echo "pid $pa_p not running"; return 1; }',
  '  set -- $(sed "s/^.*) //" "/proc/$pa_p/stat")',
  '  [ "$1" != Z ] || { echo "pid $pa_p is a zombie"; return 1; }',
  '  shift 19',
  '  [ -z "$pa_t" ] || [ "$1" = "$pa_t" ] || { echo "pid $pa_p belongs to another process now (stale pid file)"; return 1; }',
  '  echo "$pa_p"',
  '}',
].join('\n');

/**
 * Starts one supervised daemon, idempotently under races: check, port probe,
 * start and pid file all happen under an flock on `<runDir>/<name>.lock`, so
 * two concurrent starts (two dpgc runs, two operators) start one daemon and
 * the pid file always names the process that owns the port. A port already
 * answering while our pid file names no live process belongs to someone else:
 * exit 3, nothing started.
 *
 * Arguments: runDir logDir name user cwd nofile address port argv…
 * stdin: the daemon's whole environment, KEY=VALUE lines, exported from data
 * with `export "$k=$v"` (no eval, so a value is never run); secrets therefore
 * never appear in any argv (`ps` shows argv to every user).
 * $! is the daemon's pid: setsid does not fork when not a group leader, and
 * env and setpriv exec (docs/lab-facts.md). fd 9 (the lock) is closed for the daemon.
 */
const START_SCRIPT = [
  'set -eu',
  PID_ALIVE,
  'run=$1 log=$2 name=$3 user=$4 cwd=$5 nofile=$6 addr=$7 port=$8',
  'shift 8',
  'mkdir -p -- "$run" "$log"',
  'pidf="$run/$name.pid" logf="$log/$name.log"',
  'exec 9>"$run/$name.lock"',
  'flock -w 120 9 || { echo "waited 120 s for $run/$name.lock" >&2; exit 75; }',
  'if p=$(pid_alive "$pidf"); then echo "running $p"; exit 0; fi',
  'if [ -n "$addr" ] && timeout 2 bash -c \'exec 3<>"/dev/tcp/$1/$2"\' bash "$addr" "$port" 2>/dev/null; then',
  '  ss -ltnpH "sport = :$port" >&2 || true',
  '  exit 3',
  'fi',
  'touch -- "$logf"',
  'chown -- "$user:" "$logf" 2>/dev/null || chown -- "$user" "$logf"',
  '[ -z "$nofile" ] || ulimit -n "$nofile"',
  // Resolved before the variables arrive: one of them may be PATH.
  'setsid_=$(command -v setsid) env_=$(command -v env) setpriv_=$(command -v setpriv)',
  'while IFS= read -r line; do',
  '  case $line in *=*) ;; *) echo "environment line without =" >&2; exit 65;; esac',
  '  k=${line%%=*} v=${line#*=}',
  '  case $k in ""|[!A-Z_]*|*[!A-Z0-9_]*) echo "bad environment variable name: $k" >&2; exit 65;; esac',
  '  export "$k=$v"',
  'done',
  // dash exports PWD by itself; the daemon gets exactly the variables it was given.
  '"$setsid_" "$env_" -u PWD -C "$cwd" "$setpriv_" --reuid="$user" --regid="$user" --init-groups -- "$@" >>"$logf" 2>&1 </dev/null 9>&- &',
  'p=$!',
  'echo "$p $(sed \'s/^.*) //\' "/proc/$p/stat" | cut -d\' \' -f20)" > "$pidf"',
  'echo "started $p"',
].join('\n');

class SupervisedServices implements ServiceManager {
  constructor(
    private readonly host: Host,
    private readonly dirs: ServiceDirs,
  ) {}

  private pidFile(name: string) {
    return `${this.dirs.runDir}/${name}.pid`;
  }
  private logFile(name: string) {
    return `${this.dirs.logDir}/${name}.log`;
  }

  async status(s: Pick<ServiceSpec, 'name'>): Promise<ServiceState> {
    // The pid file holds "pid starttime": a pid reused by an unrelated process
    // after a reboot or crash has another start time, and is never signalled.
    // Why a shell: reading /proc on the host in one round trip; the pid file is "$1", never spliced in.
    const r = await this.host.exec(['sh', '-c', `${PID_ALIVE}\npid_alive "$1"`, 'sh', this.pidFile(s.name)], { mutates: false, allowFailure: true });
    const out = r.stdout.trim();
    return r.exitCode === 0 ? { running: true, pid: Number(out) } : { running: false, reason: out || r.stderr.trim() };
  }

  async logTail(name: string, lines = 15): Promise<string> {
    const r = await this.host.exec(['tail', '-n', String(lines), this.logFile(name)], { mutates: false, allowFailure: true });
    return lastLines(r.stdout, lines);
  }

  async start(s: ServiceSpec): Promise<{ changed: boolean; pid?: number }> {
    // Fast path, read-only (and so also what --dry-run reports): already running.
    const st = await this.status(s);
    if (st.running) return { changed: false, pid: st.pid };
    const vars = await this.daemonEnv(s);
    const args = [this.dirs.runDir, this.dirs.logDir, s.name, s.user, s.cwd ?? '/', s.nofile ? String(s.nofile) : '', s.listen?.address ?? '', s.listen ? String(s.listen.port) : ''];
    // Why a shell: the daemon must be started in the background with its pid recorded while
    // a lock is held, which only a shell on the host can do across SSH. Every value reaches the
    // script as a positional argument ("$1"…, never spliced into its text) and the variables
    // come on stdin, so nothing here is shell-quoted by hand. `env -i` gives the script, and so
    // the daemon, an environment built from scratch: nothing of dpgc's own (DPGC_SECRET_*) leaks.
    const r = await this.host.exec(['env', '-i', `PATH=${TOOL_PATH}`, 'sh', '-c', START_SCRIPT, 'sh', ...args, ...(s.restart ? superviseArgv(s.argv) : s.argv)], {
      input: vars.map(([k, v]) => `${k}=${v}\n`).join(''),
      allowFailure: true,
    });
    if (r.skipped) return { changed: true };
    const out = r.stdout.trim();
    if (r.exitCode === 3) {
      throw new HostError(`${this.host.name}: cannot start ${s.name}: ${s.listen?.address}:${s.listen?.port} is already taken by a process dpgc does not track${r.stderr.trim() ? `\n    ${r.stderr.trim()}` : ''}`, {
        hint: `See what listens there: ss -ltnp 'sport = :${s.listen?.port}' on ${this.host.name}. Stop it (a leftover of an earlier run?), then run the command again.`,
      });
    }
    if (r.exitCode !== 0) {
      throw new CommandError({ host: this.host.name, command: `start ${s.name} (${shellJoin(s.argv)})`, exitCode: r.exitCode, stdout: out, stderr: r.stderr });
    }
    // Another start won the lock and started it first: nothing for us to confirm or change.
    const running = /^running (\d+)$/.exec(out);
    if (running) return { changed: false, pid: Number(running[1]) };
    await waitListening(this.host, s, () => this.status(s), () => this.logTail(s.name));
    const now = await this.status(s);
    return { changed: true, ...(now.running ? { pid: now.pid } : {}) };
  }

  /**
   * HOME and PATH, the spec's non-secret variables, then the env file's (which
   * win, as with systemd's EnvironmentFile=). The file is read and parsed here,
   * as data: sourcing it in a root shell ran any `$(…)` a value held.
   */
  private async daemonEnv(s: ServiceSpec): Promise<[string, string][]> {
    const vars: Record<string, string> = { HOME: '/', PATH: TOOL_PATH, ...(s.env ?? {}) };
    if (s.envFile) {
      const text = await this.host.readFile(s.envFile);
      if (text === undefined && !this.host.dryRun) {
        throw new HostError(`${this.host.name}: cannot start ${s.name}: its environment file ${s.envFile} is missing`, { hint: 'Run the sprint that installs it again.' });
      }
      try {
        Object.assign(vars, parseEnvFile(text ?? '', `${this.host.name}:${s.envFile}`));
      } catch (e) {
        if (!(e instanceof EnvFileError)) throw e;
        throw new HostError(`cannot start ${s.name}: ${e.message}`, { hint: 'The file is rendered by dpgc; run the sprint that writes it again, and report it if it persists.' });
      }
    }
    for (const [k, v] of Object.entries(vars)) {
      if (!ENV_NAME.test(k) || /[\n\0]/.test(v)) throw new HostError(`${this.host.name}: cannot start ${s.name}: environment variable ${JSON.stringify(k)} has a bad name or a newline in its value`);
    }
    return Object.entries(vars);
  }

  async stop(s: Pick<ServiceSpec, 'name' | 'stopTimeoutMs'>): Promise<{ changed: boolean }> {
    const st = await this.status(s);
    if (!st.running) {
      // A stale pid file from an interrupted run is removed, never acted on.
      await this.host.exec(['rm', '-f', assertOwnedPath(this.pidFile(s.name), [this.dirs.runDir], 'stale pid file')]);
      return { changed: false };
    }
    await this.host.exec(['kill', '-TERM', String(st.pid)]);
    if (this.host.dryRun) return { changed: true };
    const timeoutMs = s.stopTimeoutMs ?? 60_000;
    await waitUntil(async () => !(await this.status(s)).running, {
      timeoutMs,
      everyMs: 200,
      timeoutError: () =>
        new HostError(`${this.host.name}: ${s.name} (pid ${st.pid}) did not stop within ${timeoutMs / 1000}s of SIGTERM`, {
          hint: `Look at ${this.logFile(s.name)} on ${this.host.name}; stop it by hand only once you know why it hangs.`,
        }),
    }, `${s.name} on ${this.host.name} stopping`);
    await this.host.exec(['rm', '-f', assertOwnedPath(this.pidFile(s.name), [this.dirs.runDir], 'pid file')]);
    return { changed: true };
  }

  async restart(s: ServiceSpec): Promise<void> {
    await this.stop(s);
    await this.start(s);
  }

  async reload(s: Pick<ServiceSpec, 'name'>): Promise<void> {
    const st = await this.status(s);
    if (!st.running) throw new HostError(`${this.host.name}: cannot reload ${s.name}: ${st.reason}`);
    await this.host.exec(['kill', '-HUP', String(st.pid)]);
  }
}

class SystemdServices implements ServiceManager {
  constructor(
    private readonly host: Host,
    private readonly dirs: ServiceDirs,
  ) {}

  private unit(name: string) {
    return `dpgc-${name}`;
  }

  async status(s: Pick<ServiceSpec, 'name'>): Promise<ServiceState> {
    const r = await this.host.exec(['systemctl', 'show', '-p', 'MainPID,ActiveState', this.unit(s.name)], { mutates: false, allowFailure: true });
    const pid = Number(/MainPID=(\d+)/.exec(r.stdout)?.[1] ?? 0);
    const state = /ActiveState=(\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
    return state === 'active' && pid > 0 ? { running: true, pid } : { running: false, reason: `unit ${this.unit(s.name)} is ${state}` };
  }

  async logTail(name: string, lines = 15): Promise<string> {
    const r = await this.host.exec(['journalctl', '-u', this.unit(name), '-n', String(lines), '--no-pager'], { mutates: false, allowFailure: true });
    return r.stdout;
  }

  async start(s: ServiceSpec): Promise<{ changed: boolean; pid?: number }> {
    const unitText = renderSystemdUnit(s);
    const w = await this.host.writeFile(`/etc/systemd/system/${this.unit(s.name)}.service`, unitText, { mode: 0o644 });
    if (w.changed) await this.host.exec(['systemctl', 'daemon-reload']);
    const before = await this.status(s);
    if (before.running && !w.changed) return { changed: false, pid: before.pid };
    await this.host.exec(['systemctl', 'enable', this.unit(s.name)]);
    await this.host.exec(['systemctl', before.running ? 'restart' : 'start', this.unit(s.name)]);
    await waitListening(this.host, s, () => this.status(s), () => this.logTail(s.name));
    const now = await this.status(s);
    return { changed: true, ...(now.running ? { pid: now.pid } : {}) };
  }

  async stop(s: Pick<ServiceSpec, 'name'>): Promise<{ changed: boolean }> {
    const st = await this.status(s);
    if (!st.running) return { changed: false };
    await this.host.exec(['systemctl', 'stop', this.unit(s.name)]);
    return { changed: true };
  }

  async restart(s: ServiceSpec): Promise<void> {
    // The unit as `s` says first: a restart is how new arguments (a web config, a flag) take effect.
    const w = await this.host.writeFile(`/etc/systemd/system/${this.unit(s.name)}.service`, renderSystemdUnit(s), { mode: 0o644 });
    if (w.changed) await this.host.exec(['systemctl', 'daemon-reload']);
    await this.host.exec(['systemctl', 'restart', this.unit(s.name)]);
    await waitListening(this.host, s, () => this.status(s), () => this.logTail(s.name));
  }

  async reload(s: Pick<ServiceSpec, 'name'>): Promise<void> {
    await this.host.exec(['systemctl', 'reload', this.unit(s.name)]);
  }
}

/** The unit file `dpgc-<name>.service` (templates/systemd/): pure, so tests read it without a host. */
export function renderSystemdUnit(s: ServiceSpec): string {
  return render('systemd/dpgc.service.eta', {
    name: s.name,
    user: s.user,
    execStart: shellJoin(s.argv),
    envFile: s.envFile,
    env: Object.entries(s.env ?? {}).map(([k, v]) => `${k}=${v}`),
    cwd: s.cwd,
    nofile: s.nofile,
    restart: s.restart ?? 'on-failure',
    killMode: s.killMode ?? 'mixed',
  });
}
