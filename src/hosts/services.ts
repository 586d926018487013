import { HostError } from '../errors.js';
import { lastLines } from '../errors.js';
import type { HostSpec } from '../config/schema.js';
import { shellJoin } from './quote.js';
import type { Host } from './types.js';

/**
 * Service control: systemd units where the host has systemd, otherwise a
 * supervised process (setsid + setpriv, pid file, log file). Either way a
 * start is confirmed by the process being alive *and* its port answering:
 * LAB.md saw daemons exit 0 and die a moment later.
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
  const deadline = Date.now() + (s.startTimeoutMs ?? 30_000);
  for (;;) {
    const st = await alive();
    if (!st.running) {
      throw new HostError(`${host.name}: ${s.name} exited right after start (${st.reason})\n${await logTail()}`, {
        hint: `Read the whole log on ${host.name} and fix what it says, then run the command again.`,
      });
    }
    if (!s.listen || (await portOpen(host, s.listen.address, s.listen.port))) return;
    if (Date.now() > deadline) {
      throw new HostError(`${host.name}: ${s.name} is running but not listening on ${s.listen.address}:${s.listen.port} after ${(s.startTimeoutMs ?? 30_000) / 1000}s\n${await logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Probed from the host itself, so it works over SSH as well as locally. */
export async function portOpen(host: Host, address: string, port: number): Promise<boolean> {
  const r = await host.exec(['timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], { mutates: false, allowFailure: true });
  return r.exitCode === 0;
}

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
    const script =
      '[ -f "$1" ] || { echo "no pid file"; exit 1; }; read p t < "$1"; ' +
      '[ -r /proc/$p/stat ] || { echo "pid $p not running"; exit 1; }; ' +
      'set -- $(sed "s/^.*) //" /proc/$p/stat); [ "$1" != Z ] || { echo "pid $p is a zombie"; exit 1; }; ' +
      'shift 19; [ -z "$t" ] || [ "$1" = "$t" ] || { echo "pid $p belongs to another process now (stale pid file)"; exit 1; }; echo "$p"';
    const r = await this.host.exec(['sh', '-c', script, 'sh', this.pidFile(s.name)], { mutates: false, allowFailure: true });
    const out = r.stdout.trim();
    return r.exitCode === 0 ? { running: true, pid: Number(out) } : { running: false, reason: out || r.stderr.trim() };
  }

  async logTail(name: string, lines = 15): Promise<string> {
    const r = await this.host.exec(['tail', '-n', String(lines), this.logFile(name)], { mutates: false, allowFailure: true });
    return lastLines(r.stdout, lines);
  }

  async start(s: ServiceSpec): Promise<{ changed: boolean; pid?: number }> {
    const st = await this.status(s);
    if (st.running) return { changed: false, pid: st.pid };
    const env = { HOME: '/', PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...(s.env ?? {}) };
    // $! is the daemon's pid: setsid does not fork when not a group leader, and
    // setpriv execs (LAB.md). The env file is sourced by this root shell so
    // secrets reach the daemon's environment and never its argv.
    const script = [
      'set -e',
      `mkdir -p ${shellJoin([this.dirs.runDir, this.dirs.logDir])}`,
      `touch ${shellJoin([this.logFile(s.name)])}`,
      `chown ${shellJoin([`${s.user}:`, this.logFile(s.name)])} || chown ${shellJoin([s.user, this.logFile(s.name)])}`,
      s.envFile ? `set -a; . ${shellJoin([s.envFile])}; set +a` : ':',
      `cd ${shellJoin([s.cwd ?? '/'])}`,
      s.nofile ? `ulimit -n ${s.nofile}` : ':',
      `env ${shellJoin(Object.entries(env).map(([k, v]) => `${k}=${v}`))} setsid setpriv --reuid=${s.user} --regid=${s.user} --init-groups -- ${shellJoin(s.argv)} >>${shellJoin([this.logFile(s.name)])} 2>&1 </dev/null &`,
      // Field 22 of /proc/<pid>/stat is the start time; after ") " it is the 20th.
      `p=$!; echo "$p $(sed 's/^.*) //' /proc/$p/stat | cut -d' ' -f20)" > ${shellJoin([this.pidFile(s.name)])}`,
    ].join('\n');
    await this.host.exec(['sh', '-c', script]);
    await waitListening(this.host, s, () => this.status(s), () => this.logTail(s.name));
    const now = await this.status(s);
    return { changed: true, ...(now.running ? { pid: now.pid } : {}) };
  }

  async stop(s: Pick<ServiceSpec, 'name' | 'stopTimeoutMs'>): Promise<{ changed: boolean }> {
    const st = await this.status(s);
    if (!st.running) {
      // A stale pid file from an interrupted run is removed, never acted on.
      await this.host.exec(['rm', '-f', this.pidFile(s.name)]);
      return { changed: false };
    }
    await this.host.exec(['kill', '-TERM', String(st.pid)]);
    if (this.host.dryRun) return { changed: true };
    const deadline = Date.now() + (s.stopTimeoutMs ?? 60_000);
    while ((await this.status(s)).running) {
      if (Date.now() > deadline) {
        throw new HostError(`${this.host.name}: ${s.name} (pid ${st.pid}) did not stop within ${(s.stopTimeoutMs ?? 60_000) / 1000}s of SIGTERM`, {
          hint: `Look at ${this.logFile(s.name)} on ${this.host.name}; stop it by hand only once you know why it hangs.`,
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await this.host.exec(['rm', '-f', this.pidFile(s.name)]);
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
    const unitText = [
      '[Unit]',
      `Description=dpgc ${s.name}`,
      'After=network-online.target',
      '',
      '[Service]',
      `User=${s.user}`,
      `Group=${s.user}`,
      `ExecStart=${shellJoin(s.argv)}`,
      'ExecReload=/bin/kill -HUP $MAINPID',
      ...(s.envFile ? [`EnvironmentFile=${s.envFile}`] : []),
      ...Object.entries(s.env ?? {}).map(([k, v]) => `Environment=${k}=${v}`),
      ...(s.cwd ? [`WorkingDirectory=${s.cwd}`] : []),
      ...(s.nofile ? [`LimitNOFILE=${s.nofile}`] : []),
      'KillMode=mixed',
      'TimeoutStopSec=60',
      'Restart=on-failure',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n');
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
    await this.host.exec(['systemctl', 'restart', this.unit(s.name)]);
    await waitListening(this.host, s, () => this.status(s), () => this.logTail(s.name));
  }

  async reload(s: Pick<ServiceSpec, 'name'>): Promise<void> {
    await this.host.exec(['systemctl', 'reload', this.unit(s.name)]);
  }
}
