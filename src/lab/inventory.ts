import { stringify } from 'yaml';
import type { InventoryInput } from '../config/schema.js';

export interface LabOptions {
  /** Absolute lab directory; each host gets `<dir>/<name>` as its root. */
  dir: string;
  /** First three octets, e.g. `127.0.0`. */
  subnet: string;
  ssh?: { port: number; key: string; knownHosts: string };
}

/** The lab's own webhook receiver (src/components/alertmanager.ts) on the monitoring host `ctl`. */
export const LAB_ALERT_RECEIVER_PORT = 9095;

export const LAB_HOSTS = [
  { name: 'ctl', octet: 10, roles: ['haproxy', 'pgbouncer', 'monitoring', 'backup'] },
  { name: 'db1', octet: 11, roles: ['postgres', 'etcd'] },
  { name: 'db2', octet: 12, roles: ['postgres', 'etcd'] },
  { name: 'db3', octet: 13, roles: ['postgres', 'etcd'] },
] as const;

/** The lab inventory: the same shape a real cluster uses, on loopback addresses. */
export function labInventory(o: LabOptions): InventoryInput {
  const monitoring = LAB_HOSTS.find((h) => (h.roles as readonly string[]).includes('monitoring'))!;
  return {
    cluster: 'dpgc-lab',
    lab: true,
    network: { allowed_cidrs: ['127.0.0.0/8'] },
    backup: { repo_path: `${o.dir}/ctl/var/lib/pgbackrest` },
    // Alerts go to dpgc's lab receiver, which writes them to a file; short group timings so a
    // notification follows a firing rule within seconds (the rules' own `for:` still applies).
    alerting: {
      receiver: 'lab',
      receivers: [{ name: 'lab', webhook: { url: `http://${o.subnet}.${monitoring.octet}:${LAB_ALERT_RECEIVER_PORT}/alerts` } }],
      group_wait: '1s',
      group_interval: '10s',
      repeat_interval: '1h',
      lab_receiver: { port: LAB_ALERT_RECEIVER_PORT },
    },
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
