import { existsSync } from 'node:fs';
import { hostPaths } from '../../config/paths.js';
import type { Role, SshSettings, TimingProfileName } from '../../config/schema.js';
import { UsageError } from '../../errors.js';
import { expandHome } from '../../hosts/known-hosts.js';
import { caProblem } from './ca-files.js';
import { TIMING_MESSAGE, timingChoices, VECTOR_CHOICES } from './choices.js';
import { askHosts, proveHost, type HostProber, type HostQuestions, type ProvenHost } from './hosts.js';
import { answer, type Prompts } from './prompts.js';
import { hostNames, proposeRoles, ROLE_ORDER, withControlHost } from './roles.js';
import { fieldProblem, inventoryProblems } from './validate.js';

/** Answers that may come as flags (`dpgc init --help`), for runs that cannot ask. */
export interface InitFlags {
  cluster?: string;
  host?: string[];
  sshUser?: string;
  sshKey?: string;
  sshPort?: string;
  knownHosts?: string;
  timings?: string;
  vector?: string;
  backupHost?: string;
  retentionFull?: string;
  backupSchedule?: string;
  caCert?: string;
  caKey?: string;
}

export interface InitHost extends ProvenHost {
  name: string;
  roles: Role[];
}

export interface InitAnswers {
  cluster: string;
  ssh: Required<Pick<SshSettings, 'user' | 'port' | 'key' | 'known_hosts'>>;
  hosts: InitHost[];
  timings: TimingProfileName;
  vector: 'pgvector' | 'ruvector';
  backup: { retention_full: number; schedule: string };
  ca: { kind: 'generate' } | { kind: 'own'; cert: string; key: string };
}

export interface InitDeps {
  /** undefined: nothing may be asked (--yes, CI, no TTY). */
  prompts: Prompts | undefined;
  prober: HostProber;
  flags: InitFlags;
  acceptNewHostKeys: boolean;
  log: (line: string) => void;
}

/** 3 hosts: an etcd quorum and a Patroni cluster that survives one loss. */
export const MIN_HOSTS = 3;

const whole = (path: (string | number)[]) => (v: string) => (/^\d+$/.test(v.trim()) ? fieldProblem(path, Number(v)) : `expected a whole number, got ${JSON.stringify(v)}`);

/** Every question of `dpgc init`, in order; hosts are proven as they are entered. */
export async function askInit(d: InitDeps): Promise<InitAnswers> {
  const { prompts: p, flags: f, log } = d;
  const cluster = await answer(p, { message: 'Cluster name (Patroni scope, pgBackRest stanza)', flag: '--cluster', given: f.cluster, default: 'main', check: (v) => fieldProblem(['cluster'], v) });
  const user = await answer(p, { message: 'SSH user on the hosts (root, or a user with passwordless sudo)', flag: '--ssh-user', given: f.sshUser, default: 'root', check: (v) => fieldProblem(['defaults', 'ssh', 'user'], v) });
  const key = await answer(p, {
    message: 'SSH private key',
    flag: '--ssh-key',
    given: f.sshKey,
    default: '~/.ssh/id_ed25519',
    check: (v) => fieldProblem(['defaults', 'ssh', 'key'], v) ?? (existsSync(expandHome(v)) ? undefined : `${v} does not exist: create a key with \`ssh-keygen -t ed25519 -f ${v}\` and install it with ssh-copy-id`),
  });
  const port = Number(await answer(p, { message: 'SSH port', flag: '--ssh-port', given: f.sshPort, default: '22', check: whole(['defaults', 'ssh', 'port']) }));
  const knownHosts = await answer(p, { message: 'known_hosts file (host keys you trust)', flag: '--known-hosts', given: f.knownHosts, default: '~/.ssh/known_hosts', check: (v) => fieldProblem(['defaults', 'ssh', 'known_hosts'], v) });
  const ssh: SshSettings = { user, port, key, known_hosts: knownHosts, connect_timeout_s: 10, ...(user === 'root' ? {} : { sudo: true }) };
  // Where PostgreSQL's data will live on a real host (the version only changes the path below it).
  const dataPath = hostPaths({ postgres: { version: 15 }, cluster } as Parameters<typeof hostPaths>[0], { root: '', name: 'db' }).pgHome;
  const hq: HostQuestions = { prompts: p, prober: d.prober, ssh, dataPath, acceptNew: d.acceptNewHostKeys, log };

  if (!p && (f.host?.length ?? 0) < MIN_HOSTS) {
    throw new UsageError(`dpgc init needs at least ${MIN_HOSTS} hosts, got ${f.host?.length ?? 0} — cannot ask: not interactive (--yes, CI or no TTY)`, { hint: 'Pass --host for each host, e.g. --host db1.example.com --host 10.0.0.12 --host 10.0.0.13.' });
  }
  const proven = await askHosts(hq, f.host ?? [], MIN_HOSTS);
  let hosts = await placeRoles(p, proven, log);
  hosts = await askBackupHost(p, hq, hosts, f.backupHost, log);

  const colocated = hosts.some((h) => h.roles.includes('postgres') && h.roles.includes('etcd'));
  let timings: TimingProfileName;
  if (f.timings !== undefined || !p) {
    const v = f.timings ?? 'balanced';
    const prob = fieldProblem(['timings', 'profile'], v);
    if (prob) throw new UsageError(`--timings ${v}: ${prob}`);
    timings = v as TimingProfileName;
  } else {
    timings = await p.select({ message: TIMING_MESSAGE, choices: timingChoices(colocated), default: 'balanced' });
  }

  let vector: 'pgvector' | 'ruvector';
  if (f.vector !== undefined || !p) {
    const v = f.vector ?? 'pgvector';
    const prob = fieldProblem(['postgres', 'vector'], v);
    if (prob) throw new UsageError(`--vector ${v}: ${prob}`);
    vector = v as 'pgvector' | 'ruvector';
  } else {
    vector = await p.select({ message: 'Vector engine', choices: VECTOR_CHOICES, default: 'pgvector' });
  }

  const retention_full = Number(await answer(p, { message: 'Full backups to keep (older ones and the WAL only they need expire)', flag: '--retention-full', given: f.retentionFull, default: '2', check: whole(['backup', 'retention_full']) }));
  const schedule = await answer(p, { message: 'Backup schedule (an interval such as 1d or 6h, or systemd OnCalendar such as daily)', flag: '--backup-schedule', given: f.backupSchedule, default: '1d', check: (v) => fieldProblem(['backup', 'schedule'], v) });

  let ca: InitAnswers['ca'] = { kind: 'generate' };
  if (f.caCert !== undefined || f.caKey !== undefined) {
    if (!f.caCert || !f.caKey) throw new UsageError('--ca-cert and --ca-key go together: the CA certificate and its private key');
    const prob = caProblem(f.caCert, f.caKey);
    if (prob) throw new UsageError(prob);
    ca = { kind: 'own', cert: f.caCert, key: f.caKey };
  } else if (p) {
    const kind = await p.select({
      message: 'Certificate authority for the cluster (pgBackRest TLS now, PostgreSQL TLS later)',
      choices: [
        { value: 'generate' as const, name: "Generate one (dpgc's own CA, key kept beside the inventory)" },
        { value: 'own' as const, name: 'Use mine (paths to its certificate and private key)' },
      ],
      default: 'generate',
    });
    if (kind === 'own') {
      const cert = await p.input({ message: 'CA certificate (PEM)', validate: (v) => (existsSync(expandHome(v)) ? true : `${v} does not exist`) });
      const keyPath = await p.input({ message: 'CA private key (PEM, unencrypted)', validate: (v) => caProblem(cert, v) ?? true });
      ca = { kind: 'own', cert, key: keyPath };
    }
  }
  return { cluster, ssh: { user, port, key, known_hosts: knownHosts }, hosts, timings, vector, backup: { retention_full, schedule }, ca };
}

function placementLines(hosts: readonly InitHost[]): string[] {
  const w = Math.max(...hosts.map((h) => h.name.length));
  const a = Math.max(...hosts.map((h) => h.address.length));
  return hosts.map((h) => `  ${h.name.padEnd(w)}  ${h.address.padEnd(a)}  ${h.roles.join(', ')}`);
}

function named(proven: readonly ProvenHost[], roles: Role[][]): InitHost[] {
  const names = hostNames(proven, roles);
  return proven.map((h, i) => ({ ...h, name: names[i]!, roles: roles[i]! }));
}

/** The proposal from the host count, shown and editable; every edit is checked by the inventory rules (etcd quorum, ports…). */
async function placeRoles(p: Prompts | undefined, proven: readonly ProvenHost[], log: (l: string) => void): Promise<InitHost[]> {
  let roles = proposeRoles(proven.length);
  for (;;) {
    const hosts = named(proven, roles);
    const problems = inventoryProblems({ cluster: 'main', hosts: hosts.map((h) => ({ name: h.name, address: h.address, roles: h.roles })) });
    log(proven.length <= 3 ? 'Role placement (3 hosts: everything co-located):' : 'Role placement (the first host is the control host):');
    for (const l of placementLines(hosts)) log(l);
    for (const pr of problems) log(`  ✘ ${pr}`);
    if (!p) {
      if (problems.length) throw new UsageError(`the proposed role placement is not valid:\n  ${problems.join('\n  ')}`);
      return hosts;
    }
    const action = await p.select({
      message: 'Role placement',
      choices: [
        ...(problems.length ? [] : [{ value: 'accept' as const, name: 'Use this placement' }]),
        ...(proven.length > 3 ? [{ value: 'control' as const, name: 'Choose another control host' }] : []),
        { value: 'edit' as const, name: "Change one host's roles" },
        { value: 'reset' as const, name: 'Back to the proposal' },
      ],
    });
    if (action === 'accept') return hosts;
    if (action === 'reset') roles = proposeRoles(proven.length);
    else if (action === 'control') {
      const i = await p.select({ message: 'Control host', choices: hosts.map((h, j) => ({ value: String(j), name: `${h.name} (${h.address})` })) });
      roles = withControlHost(roles, Number(i));
    } else {
      const i = Number(await p.select({ message: 'Which host', choices: hosts.map((h, j) => ({ value: String(j), name: `${h.name} (${h.address}): ${h.roles.join(', ')}` })) }));
      const picked = await p.checkbox({
        message: `Roles of ${hosts[i]!.name}`,
        choices: ROLE_ORDER.map((r) => ({ value: r, name: r, checked: roles[i]!.includes(r) })),
        validate: (v) => (v.length ? true : 'give the host at least one role'),
      });
      roles = roles.map((r, j) => (j === i ? ROLE_ORDER.filter((x) => picked.includes(x)) : r));
    }
  }
}

/**
 * The pgBackRest repository's host: one without PostgreSQL (a repository on a
 * database host is lost with it; sprint 4 refuses it). With three co-located
 * hosts that means another host, entered and proven like the others, or none
 * for now.
 */
async function askBackupHost(p: Prompts | undefined, hq: HostQuestions, hosts: InitHost[], given: string | undefined, log: (l: string) => void): Promise<InitHost[]> {
  const candidates = hosts.filter((h) => !h.roles.includes('postgres'));
  const current = hosts.find((h) => h.roles.includes('backup'));
  const assign = (name: string): InitHost[] => hosts.map((h) => ({ ...h, roles: h.name === name ? [...new Set<Role>([...h.roles, 'backup'])] : h.roles.filter((r) => r !== 'backup') }));
  const addNew = (h: ProvenHost): InitHost[] => {
    const name = h.name ?? hostNames([...hosts, { name: undefined }], [...hosts.map((x) => x.roles), ['backup']]).at(-1)!;
    return [...hosts.map((x) => ({ ...x, roles: x.roles.filter((r) => r !== 'backup') })), { ...h, name, roles: ['backup'] }];
  };
  if (given !== undefined) {
    const hit = hosts.find((h) => h.name === given || h.input === given || h.address === given);
    if (hit?.roles.includes('postgres')) throw new UsageError(`--backup-host ${given}: ${hit.name} runs PostgreSQL; the repository must be on another host, or it is lost with the database`);
    if (hit) return assign(hit.name);
    const r = await proveHost({ ...hq, prompts: undefined }, given, hosts);
    if ('problem' in r) throw new UsageError(`--backup-host ${given}: ${r.problem}`);
    return addNew(r);
  }
  if (!p) return hosts;
  for (;;) {
    const choice = await p.select({
      message: 'Backup repository host (pgBackRest; not a database host)',
      choices: [
        ...candidates.map((h) => ({ value: `host:${h.name}`, name: `${h.name} (${h.address})` })),
        { value: 'new', name: 'Another host (entered and checked now)' },
        { value: 'none', name: 'None for now (sprint 4 needs one: add a host with the backup role later)' },
      ],
      default: current ? `host:${current.name}` : 'new',
    });
    if (choice === 'none') return hosts.map((h) => ({ ...h, roles: h.roles.filter((r) => r !== 'backup') })).filter((h) => h.roles.length);
    if (choice.startsWith('host:')) return assign(choice.slice(5));
    const v = await p.input({ message: 'Backup host: DNS name or IPv4 address' });
    const r = await proveHost(hq, v.trim(), hosts);
    if (!('problem' in r)) return addNew(r);
    log(`✘ ${r.problem}`);
  }
}
