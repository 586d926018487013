import type { HostSpec, Inventory, Role } from '../config/schema.js';
import { hostPaths, type HostPaths } from '../config/paths.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../output/log.js';
import { LocalHost } from './local.js';
import { serviceManager, type ServiceManager } from './services.js';
import type { Host } from './types.js';

export interface HostPoolOptions {
  dryRun: boolean;
  logger: Logger;
  /** Trust and record SSH host keys seen for the first time. */
  acceptNewHostKeys?: boolean;
}

/** A managed host: its spec, its transport, its paths and its service manager. */
export interface Node {
  spec: HostSpec;
  host: Host;
  paths: HostPaths;
  services: ServiceManager;
}

/**
 * One connection per host for the whole run, opened on first use. The SSH
 * transport is imported lazily so commands that never touch a host (help,
 * schema, lab init) never load ssh2.
 */
export class HostPool {
  private readonly nodes = new Map<string, Promise<Node>>();

  constructor(
    readonly inventory: Inventory,
    private readonly opts: HostPoolOptions,
  ) {}

  specs(role?: Role): HostSpec[] {
    return role ? this.inventory.hosts.filter((h) => h.roles.includes(role)) : this.inventory.hosts;
  }

  spec(name: string): HostSpec {
    const s = this.inventory.hosts.find((h) => h.name === name);
    if (!s) throw new UsageError(`no host named "${name}" in ${this.inventory.file}`, { hint: `Hosts: ${this.inventory.hosts.map((h) => h.name).join(', ')}.` });
    return s;
  }

  node(name: string): Promise<Node> {
    let n = this.nodes.get(name);
    if (!n) {
      n = this.open(this.spec(name));
      this.nodes.set(name, n);
      n.catch(() => this.nodes.delete(name));
    }
    return n;
  }

  async nodesWith(role: Role): Promise<Node[]> {
    return Promise.all(this.specs(role).map((s) => this.node(s.name)));
  }

  private async open(spec: HostSpec): Promise<Node> {
    const base = { name: spec.name, address: spec.address, dryRun: this.opts.dryRun, logger: this.opts.logger };
    let host: Host;
    if (spec.transport === 'ssh') {
      const { SshHost } = await import('./ssh.js');
      host = await SshHost.connect({ ...base, ssh: spec.ssh, acceptNewHostKeys: this.opts.acceptNewHostKeys ?? false });
    } else {
      host = new LocalHost(base);
    }
    const paths = hostPaths(this.inventory, spec);
    return { spec, host, paths, services: serviceManager(host, spec, paths) };
  }

  async close(): Promise<void> {
    const all = await Promise.allSettled(this.nodes.values());
    await Promise.all(all.map((r) => (r.status === 'fulfilled' ? r.value.host.close() : Promise.resolve())));
    this.nodes.clear();
  }
}
