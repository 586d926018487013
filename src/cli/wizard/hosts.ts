import { HostError, UsageError } from '../../errors.js';
import { throwIfInterrupted } from '../../interrupt.js';
import type { ProbeVerdict } from '../../components/probe.js';
import { describeProbe } from '../../components/probe.js';
import type { SshSettings } from '../../config/schema.js';
import type { Prompts } from './prompts.js';
import { parseHostInput } from './validate.js';

/** Where and how a host is reached while the inventory does not exist yet. */
export interface ProbeTarget {
  name: string;
  address: string;
  ssh: SshSettings;
}

export type HostKeySeen = { known: true; fingerprint: string } | { known: false; type: string; fingerprint: string };

/** The side effects of proving a host (src/cli/wizard/ssh-prober.ts; a fake in the prompt tests). */
export interface HostProber {
  /** A DNS name to its IPv4 address; HostError when it has none. */
  resolve(name: string): Promise<string>;
  /** The key the host offers, and whether known_hosts (or a pin) already trusts it; HostError when refused (changed, revoked) or unreachable. */
  hostKey(t: ProbeTarget): Promise<HostKeySeen>;
  /** Records the key `hostKey` saw in known_hosts, as --accept-new-host-keys would (the line OpenSSH writes). */
  trust(t: ProbeTarget): Promise<void>;
  /** Logs in and measures (src/components/probe.ts); HostError when the login fails. */
  probe(t: ProbeTarget, dataPath: string): Promise<ProbeVerdict>;
}

export interface ProvenHost {
  /** From the DNS name (its first label), or undefined for an address: named by its roles later. */
  name: string | undefined;
  /** What the operator typed. */
  input: string;
  address: string;
  fingerprint: string;
  verdict: ProbeVerdict;
  /** A new host key the operator confirmed: recorded in known_hosts (`HostProber.trust`) when the inventory is written. */
  recordKey?: ProbeTarget;
}

export interface HostQuestions {
  prompts: Prompts | undefined;
  prober: HostProber;
  ssh: SshSettings;
  dataPath: string;
  /** --accept-new-host-keys: without prompts, the only way a new key is trusted. */
  acceptNew: boolean;
  log: (line: string) => void;
}

const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Proves one host: resolves it, shows and confirms an unknown host key (as
 * ssh does) and records it, logs in, and judges what it finds with
 * preflight's limits. Returns the host, or what is wrong with it and what to
 * do, for the operator to read before answering again.
 */
export async function proveHost(q: HostQuestions, input: string, taken: readonly ProvenHost[]): Promise<ProvenHost | { problem: string }> {
  const parsed = parseHostInput(input);
  if ('problem' in parsed) return parsed;
  try {
    const address = parsed.kind === 'ipv4' ? parsed.address : await q.prober.resolve(parsed.name);
    const label = parsed.kind === 'dns' ? parsed.name.split('.')[0]! : undefined;
    const clash = taken.find((h) => h.address === address);
    if (clash) return { problem: `${input} is ${address}, already entered as ${clash.input}: every host needs its own address` };
    const name = label && HOST_NAME.test(label) && !taken.some((h) => h.name === label) ? label : undefined;
    const target: ProbeTarget = { name: name ?? input, address, ssh: q.ssh };
    const where = `${input}${parsed.kind === 'dns' ? ` (${address})` : ''}`;
    const key = await q.prober.hostKey(target);
    if (!key.known) {
      const known = q.ssh.known_hosts ?? '~/.ssh/known_hosts';
      if (q.prompts) {
        q.log(`The authenticity of host '${where}' port ${q.ssh.port} can't be established.`);
        q.log(`${key.type} key fingerprint is ${key.fingerprint}.`);
        const ok = await q.prompts.confirm({ message: `Is that the key of ${input}? Trust it and record it in ${known}`, default: false });
        if (!ok) {
          return {
            problem:
              `host key of ${where} not trusted, nothing recorded. Compare it with the key on the host's console ` +
              `(\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`), then enter the host again and answer yes`,
          };
        }
      } else if (!q.acceptNew) {
        return { problem: `unknown SSH host key for ${where}: ${key.type} ${key.fingerprint} (not in ${known}); if that is the host's key, pass --accept-new-host-keys` };
      }
      q.log(`Trusted ${key.fingerprint} for this check; it goes into ${known} when the inventory is written.`);
    }
    q.log(`Checking ${where} over SSH as ${q.ssh.user}…`);
    // A key just confirmed is pinned for this login only: Ctrl-C or "no" later leaves known_hosts as it was.
    const verdict = await q.prober.probe(key.known ? target : { ...target, ssh: { ...target.ssh, host_key_fingerprints: [key.fingerprint] } }, q.dataPath);
    if (verdict.problems.length) return { problem: `${where}: ${verdict.problems.join('; ')}` };
    q.log(`✔ ${where}: ${describeProbe(verdict.facts, q.dataPath)}`);
    for (const w of verdict.warnings) q.log(`  warning: ${w}`);
    return { name, input, address, fingerprint: key.fingerprint, verdict, ...(key.known ? {} : { recordKey: target }) };
  } catch (e) {
    if (!(e instanceof HostError)) throw e;
    return { problem: `${e.message}${e.hint ? ` — ${e.hint}` : ''}` };
  }
}

/**
 * Hosts one at a time, each proven the moment it is entered; a host that
 * fails is explained and asked for again. Without prompts: the --host
 * values, and a failure is the command's error (exit 4).
 */
export async function askHosts(q: HostQuestions, given: readonly string[], min: number): Promise<ProvenHost[]> {
  const hosts: ProvenHost[] = [];
  if (!q.prompts) {
    // Every value is read before any host is contacted: a typo is a usage error, not a connection attempt.
    for (const input of given) {
      const p = parseHostInput(input);
      if ('problem' in p) throw new UsageError(`--host ${input}: ${p.problem}`);
    }
    for (const input of given) {
      const r = await proveHost(q, input, hosts);
      if ('problem' in r) throw new HostError(r.problem, { hint: 'Nothing was written.' });
      hosts.push(r);
    }
    return hosts;
  }
  q.log(`Hosts: at least ${min} (3 co-locate every role; from 4 on, the first runs HAProxy, PgBouncer, monitoring and the backup repository).`);
  for (;;) {
    const i = hosts.length + 1;
    const done = hosts.length >= min;
    const v = await q.prompts.input({
      message: `Host ${i}: DNS name or IPv4 address${done ? ' (empty: no more hosts)' : ''}`,
      validate: (s) => {
        if (!s.trim()) return done || `at least ${min} hosts: etcd and Patroni need a quorum of 3`;
        const p = parseHostInput(s);
        if ('problem' in p) return p.problem;
        return hosts.some((h) => h.input === s.trim()) ? `${s.trim()} is already host ${hosts.findIndex((h) => h.input === s.trim()) + 1}` : true;
      },
    });
    if (!v.trim()) return hosts;
    const r = await proveHost(q, v.trim(), hosts);
    // Ctrl-C while a host was being checked (a signal, not a keypress at a question): stop here, nothing written.
    throwIfInterrupted();
    if ('problem' in r) {
      q.log(`✘ ${r.problem}`);
      q.log(`  Enter host ${i} again (or another one).`);
      continue;
    }
    hosts.push(r);
  }
}
