import { Document, isMap, isScalar, isSeq, type YAMLMap } from 'yaml';
import { describeProbe } from '../../components/probe.js';
import type { InventoryInput, Role } from '../../config/schema.js';
import { explainFailover, resolveTimings, worstCaseFailover } from '../../config/timings.js';
import type { InitAnswers } from './init-wizard.js';
import { ROLE_WHY } from './roles.js';

/** The inventory the answers make (plain data, validated by the loader before it is written). */
export function inventoryFromAnswers(a: InitAnswers): InventoryInput {
  return {
    cluster: a.cluster,
    defaults: { transport: 'ssh', ssh: { user: a.ssh.user, port: a.ssh.port, key: a.ssh.key, known_hosts: a.ssh.known_hosts, ...(a.ssh.user === 'root' ? {} : { sudo: true }) } },
    hosts: a.hosts.map((h) => ({ name: h.name, address: h.address, roles: h.roles })),
    postgres: { vector: a.vector },
    timings: { profile: a.timings },
    backup: { retention_full: a.backup.retention_full, schedule: a.backup.schedule },
  };
}

function worstCase(a: InitAnswers) {
  return worstCaseFailover(resolveTimings({ profile: a.timings, rto_budget_s: 30 }), { etcdColocated: a.hosts.some((h) => h.roles.includes('postgres') && h.roles.includes('etcd')) });
}

function rolesWhy(roles: readonly Role[]): string {
  return roles.map((r) => `${r}: ${ROLE_WHY[r]}`).join('; ');
}

/**
 * The inventory as a YAML document whose comments say why each choice was
 * made, so the file explains itself to whoever opens it next (the sprint
 * wizard edits it later through the same Document API, keeping them).
 */
export function inventoryDocument(a: InitAnswers, file: string, now = new Date()): Document {
  const doc = new Document(inventoryFromAnswers(a));
  const backupHost = a.hosts.find((h) => h.roles.includes('backup'));
  doc.commentBefore = [
    ` Written by \`dpgc init\` on ${now.toISOString().slice(0, 10)}; every host below was reached over SSH and checked then.`,
    ` Every key and its default: \`dpgc schema\`. Next: \`dpgc -c ${file} plan 0\`, then \`dpgc -c ${file} sprint 0\`.`,
  ].join('\n');
  const why: Record<string, string> = {
    cluster: ' The Patroni scope and the pgBackRest stanza: it names the cluster everywhere.',
    defaults: [
      ` How dpgc reaches every host. Host keys were shown and confirmed, then recorded in ${a.ssh.known_hosts}.`,
      a.ssh.user === 'root' ? ' dpgc logs in as root.' : ` ${a.ssh.user} runs dpgc's commands through \`sudo -n\` (checked: passwordless sudo works).`,
    ].join('\n'),
    hosts: ` ${a.hosts.length} hosts. ${a.hosts.length <= 3 || a.hosts.every((h) => h.roles.includes('postgres')) ? 'Every role co-located on the database hosts' : 'A control host runs HAProxy, PgBouncer and monitoring; the others run PostgreSQL'}; etcd on ${a.hosts.filter((h) => h.roles.includes('etcd')).length} hosts (an odd quorum).`,
    postgres: a.vector === 'pgvector' ? ' pgvector: packaged (or built from Debian source on Debian 12), HNSW indexes.' : ' RuVector: installed from its pinned Docker image, so every database host needs Docker.',
    timings: ` Profile ${a.timings}: worst-case write outage after a host death ${explainFailover(worstCase(a))} (src/config/timings.ts, the arithmetic the checks use).`,
    backup: [
      ` ${a.backup.retention_full} full backups kept, scheduled every ${a.backup.schedule}.`,
      backupHost ? ` The repository is on ${backupHost.name}, not on a database host: it survives losing one.` : ' No host has the backup role yet: sprint 4 needs one without PostgreSQL.',
      a.ca.kind === 'own'
        ? ` TLS certificates (pgBackRest now) come from your CA, copied from ${a.ca.cert} into ${file.replace(/\.ya?ml$/, '')}.ca/.`
        : ` TLS certificates come from dpgc's own CA, made by sprint 4 in ${file.replace(/\.ya?ml$/, '')}.ca/ (keep its key with the secrets).`,
    ].join('\n'),
  };
  const root = doc.contents as YAMLMap;
  for (const pair of root.items) {
    if (isScalar(pair.key) && typeof pair.key.value === 'string' && why[pair.key.value]) pair.key.commentBefore = why[pair.key.value];
  }
  const seq = doc.get('hosts', true);
  if (isSeq(seq)) {
    seq.items.forEach((item, i) => {
      const h = a.hosts[i];
      if (!h || !isMap(item)) return;
      const from = h.input === h.address ? '' : ` (${h.input})`;
      item.commentBefore = [` ${h.name}${from}: ${describeProbe(h.verdict.facts, '/var/lib/postgresql')}`, ` host key ${h.fingerprint}`, ` ${rolesWhy(h.roles)}`].join('\n');
      item.flow = false;
      const roles = item.get('roles', true);
      if (isSeq(roles)) roles.flow = true;
    });
  }
  return doc;
}

/** What will be written, for the last look before the confirmation. */
export function summaryLines(a: InitAnswers, file: string): string[] {
  const b = worstCase(a);
  return [
    `Summary (${file}):`,
    `  cluster        ${a.cluster}`,
    `  ssh            ${a.ssh.user}@<host>:${a.ssh.port}, key ${a.ssh.key}${a.ssh.user === 'root' ? '' : ', sudo'}`,
    ...a.hosts.map((h) => `  host           ${h.name} ${h.address}${h.input === h.address ? '' : ` (${h.input})`}: ${h.roles.join(', ')}`),
    `  timings        ${a.timings}: worst-case failover ${b.totalS} s`,
    `  vector         ${a.vector}`,
    `  backups        ${a.backup.retention_full} full kept, every ${a.backup.schedule}, repository on ${a.hosts.find((h) => h.roles.includes('backup'))?.name ?? 'no host yet'}`,
    `  CA             ${a.ca.kind === 'own' ? `yours (${a.ca.cert})` : 'generated by dpgc'}`,
  ];
}
