import { stringify } from 'yaml';
import type { InventoryInput } from '../config/schema.js';

export interface LabOptions {
  /** Absolute lab directory; each host gets `<dir>/<name>` as its root. */
  dir: string;
  /** First three octets, e.g. `127.0.0`. */
  subnet: string;
  ssh?: { port: number; key: string; knownHosts: string };
}

export const LAB_HOSTS = [
  { name: 'ctl', octet: 10, roles: ['haproxy', 'pgbouncer', 'monitoring', 'backup'] },
  { name: 'db1', octet: 11, roles: ['postgres', 'etcd'] },
  { name: 'db2', octet: 12, roles: ['postgres', 'etcd'] },
  { name: 'db3', octet: 13, roles: ['postgres', 'etcd'] },
] as const;

/** The lab inventory: the same shape a real cluster uses, on loopback addresses. */
export function labInventory(o: LabOptions): InventoryInput {
  return {
    cluster: 'dpgc-lab',
    lab: true,
    network: { allowed_cidrs: ['127.0.0.0/8'] },
    backup: { repo_path: `${o.dir}/ctl/var/lib/pgbackrest` },
    defaults: {
      transport: o.ssh ? 'ssh' : 'local',
      services: 'supervised',
      ...(o.ssh ? { ssh: { user: 'root', port: o.ssh.port, key: o.ssh.key, known_hosts: o.ssh.knownHosts } } : {}),
    },
    hosts: LAB_HOSTS.map((h) => ({ name: h.name, address: `${o.subnet}.${h.octet}`, roles: [...h.roles], root: `${o.dir}/${h.name}` })),
  };
}

export function labInventoryYaml(o: LabOptions): string {
  return `# dpgc lab: a whole cluster on this machine, each host a loopback address with its own root directory.\n# Real hosts use the same format: drop \`lab\`, \`root\` and \`services: supervised\`, set transport: ssh.\n${stringify(labInventory(o))}`;
}
