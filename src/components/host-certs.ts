import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { HostSpec, Inventory } from '../config/schema.js';
import { readPrivateFile } from '../config/private-file.js';
import { YamlSource } from '../config/source.js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { caPathsFor, coverageGaps, operatorMayServe, RENEW_BEFORE_DAYS, type CertRequest, type OperatorCert } from './ca.js';
import { etcdCertRequest } from './etcd-tls.js';
import { metricsCertRequest } from './metrics-web.js';
import { restCertRequest } from './patroni-tls.js';
import { pgbouncerCertRequest } from './pgbouncer.js';
import { pgCertRequest } from './postgres-tls.js';

/**
 * The operator's own server certificates (inventory `hosts[i].tls: { cert, key }`):
 * one per host, signed by the cluster's CA (the certificate every client of the
 * cluster trusts), installed by CertificateAuthority.ensureHostCert wherever dpgc
 * would issue a server certificate on that host. Checked on the control machine
 * before any host is touched (cli/setup.ts), and again as a run opens the CA, by
 * the same rules: a certificate that would not serve every daemon on the host is
 * refused up front rather than half-installed; one ending within 30 days is
 * said (readiness fails on it) but installed.
 */

/** What the certificate is for, said in a refusal: the daemon that needs a name or a usage. */
const SERVES: Record<string, string> = {
  postgres: 'PostgreSQL',
  patroni: "Patroni's REST API",
  metrics: 'the metrics endpoints',
  pgbouncer: 'PgBouncer',
  etcd: 'etcd',
};

/**
 * Every certificate dpgc would issue on this host that an operator's certificate
 * stands in for, by its roles: what the one certificate must name and allow.
 * pgBackRest's is left to the CA (its CN is an identity: CertRequest.identity).
 */
export function hostServerCerts(inv: Pick<Inventory, 'hosts'>, spec: HostSpec): CertRequest[] {
  const r = spec.roles;
  return [
    metricsCertRequest(spec),
    ...(r.includes('postgres') ? [pgCertRequest(inv, spec), restCertRequest(spec)] : []),
    ...(r.includes('pgbouncer') ? [pgbouncerCertRequest(spec)] : []),
    ...(r.includes('etcd') ? [etcdCertRequest(spec)] : []),
  ].filter(operatorMayServe);
}

export interface CertProblem {
  /** Which of the two files is wrong. */
  field: 'cert' | 'key';
  /** What is wrong and what to do, in one sentence or two. */
  message: string;
}

export interface CertInput {
  certPem: string;
  keyPem: string;
  /** The cluster CA's certificate; undefined when the cluster has none yet. */
  caPem: string | undefined;
  caFile: string;
  needs: CertRequest[];
  now: Date;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;
const day = (d: Date) => d.toISOString().slice(0, 10);

/**
 * Pure: every reason the operator's certificate and key cannot serve the host,
 * and the parsed certificate when the file holds one. The checks a client makes
 * (signed by the CA it trusts, its names, its usages, its dates) and the ones the
 * daemons make (the key belongs to it).
 */
export function operatorCertProblems(f: CertInput): { problems: CertProblem[]; warnings?: string[]; leaf?: X509Certificate } {
  const blocks = [...f.certPem.matchAll(PEM_BLOCK)];
  if (!blocks.length) return { problems: [{ field: 'cert', message: 'holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the host\'s certificate in PEM, optionally followed by its chain' }] };
  const other = blocks.find((b) => b[1] !== 'CERTIFICATE');
  if (other) {
    return {
      problems: [{ field: 'cert', message: `holds a ${other[1]} block besides certificates; the file is installed readable by every user on the host: keep only the certificate and its chain there (a private key goes in tls.key)` }],
    };
  }
  const certs: X509Certificate[] = [];
  for (const [i, b] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(b[0]));
    } catch (e) {
      return { problems: [{ field: 'cert', message: `its ${i === 0 ? 'first certificate' : `certificate number ${i + 1}`} does not parse (${(e as Error).message}); give the host's certificate in PEM, optionally followed by its chain` }] };
    }
  }
  const leaf = certs[0]!;
  const problems: CertProblem[] = [];
  const cert = (message: string) => problems.push({ field: 'cert', message });
  if (leaf.ca) cert('starts with a CA certificate (basicConstraints CA:TRUE); put the host\'s own certificate first, then its chain');
  let publicKey: string | undefined;
  try {
    publicKey = createPublicKey(createPrivateKey(f.keyPem)).export({ type: 'spki', format: 'pem' }).toString();
  } catch (e) {
    problems.push({ field: 'key', message: `cannot be read as an unencrypted private key (${(e as Error).message}); the daemons read it without a passphrase: give it in PEM without one (\`openssl pkey -in KEY -out KEY.plain\`), mode 0600` });
  }
  if (publicKey !== undefined && publicKey !== leaf.publicKey.export({ type: 'spki', format: 'pem' }).toString()) {
    problems.push({ field: 'key', message: 'does not belong to the certificate in tls.cert (their public keys differ); give the key the certificate was made for' });
  }
  const from = new Date(leaf.validFrom);
  const to = new Date(leaf.validTo);
  const days = (to.getTime() - f.now.getTime()) / 86_400_000;
  if (from.getTime() > f.now.getTime()) cert(`is not valid before ${from.toISOString()}; check this machine's clock, or give a certificate valid now`);
  if (days <= 0) cert(`expired on ${day(to)}; give a renewed certificate (dpgc never renews an operator's certificate)`);
  // Ending soon is said, not refused: refusing would lock the operator out of every repair (a sprint 3 after
  // a failover, a drill) until a renewed certificate arrives. The readiness criterion r.certs.valid fails on it.
  const warnings: string[] = [];
  if (days > 0 && days < RENEW_BEFORE_DAYS) {
    warnings.push(`ends on ${day(to)}, in ${Math.floor(days)} days, and dpgc never renews an operator's certificate: put a renewed one there (r.certs.valid fails until then)`);
  }
  if (f.caPem === undefined) {
    cert(`cannot be checked against the cluster's CA: there is none yet (${f.caFile}); put your CA's certificate and key there (mode 0600 for the key), or run \`dpgc sprint 4\` without tls on this host first and have the certificate signed by the CA it makes`);
  } else {
    const ca = new X509Certificate(f.caPem);
    if (!(leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) {
      cert(`was not signed by the cluster's CA ${f.caFile} (its issuer is ${oneLine(leaf.issuer)}, the CA is ${oneLine(ca.subject)}); every client of the cluster trusts only that CA: have the certificate signed by it`);
    }
  }
  const missing = new Map<string, string[]>();
  const usage = new Map<string, string[]>();
  for (const req of f.needs) {
    const gaps = coverageGaps(leaf, req);
    for (const n of gaps.names) missing.set(n, [...(missing.get(n) ?? []), SERVES[req.name] ?? req.name]);
    for (const u of gaps.usage) usage.set(`${u}Auth`, [...(usage.get(`${u}Auth`) ?? []), SERVES[req.name] ?? req.name]);
  }
  if (missing.size) {
    cert(`does not name ${[...missing.keys()].join(', ')} among its subject alternative names (${[...missing].map(([n, s]) => `${n}: ${[...new Set(s)].join(', ')}`).join('; ')}); clients check those names: add them (DNS: for names, IP: for addresses)`);
  }
  if (usage.size) {
    const why = usage.has('clientAuth') ? ' (etcd presents the same certificate when it dials its peers, and etcdctl on the host with it)' : '';
    cert(`lacks the extended key usage ${[...usage].map(([u, s]) => `${u} (${[...new Set(s)].join(', ')})`).join(' and ')}${why}; add it`);
  }
  return { problems, ...(warnings.length ? { warnings } : {}), leaf };
}

const oneLine = (dn: string) => dn.split('\n').join(', ');

/**
 * Every host's certificate and key read and checked, by the CA in `caPem`
 * (undefined: there is none yet). A ConfigError naming each problem at its
 * field in the inventory (file and line) and the file it is about.
 */
export async function loadOperatorCerts(inv: Pick<Inventory, 'hosts' | 'file'>, caPem: string | undefined, now = new Date(), warn: (message: string) => void = () => {}): Promise<Map<string, OperatorCert>> {
  const caFile = caPathsFor(inv.file).cert;
  const out = new Map<string, OperatorCert>();
  const issues: { index: number; field: 'cert' | 'key'; file: string; message: string }[] = [];
  for (const [index, spec] of inv.hosts.entries()) {
    if (!spec.tls) continue;
    const { cert: certFile, key: keyFile } = spec.tls;
    const field = `hosts[${index}].tls`;
    const certPem = await readFile(certFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
      issues.push({ index, field: 'cert', file: certFile, message: e.code === 'ENOENT' ? 'does not exist; put the host\'s certificate there, or fix the path (relative paths are relative to the inventory)' : `cannot be read (${e.code ?? e.message})` });
      return undefined;
    });
    let keyPem: string | undefined;
    try {
      keyPem = await readPrivateFile(keyFile, {
        label: `${field}.key ${keyFile}`,
        ownerRisk: 'its owner could replace the key the host serves with',
        exposed: `and treat the key as exposed if others could read it: have ${spec.name}'s certificate re-issued with a new key.`,
        directoryHint: `Name the key file itself in ${field}.key.`,
      });
      if (keyPem === undefined) issues.push({ index, field: 'key', file: keyFile, message: 'does not exist; put the host\'s private key there (mode 0600), or fix the path (relative paths are relative to the inventory)' });
    } catch (e) {
      // readPrivateFile's refusal already names the field and the file.
      issues.push({ index, field: 'key', file: '', message: `${(e as ConfigError).message}; ${(e as ConfigError).hint ?? ''}`.replace(/; $/, '') });
    }
    if (certPem === undefined || keyPem === undefined) continue;
    const r = operatorCertProblems({ certPem, keyPem, caPem, caFile, needs: hostServerCerts(inv, spec), now });
    for (const p of r.problems) issues.push({ index, field: p.field, file: p.field === 'cert' ? certFile : keyFile, message: p.message });
    for (const w of r.warnings ?? []) warn(`${field}.cert ${certFile} (${spec.name}) ${w}`);
    if (!r.problems.length && r.leaf) out.set(spec.name, { field, certFile, keyFile, certPem, keyPem, leaf: r.leaf });
  }
  if (issues.length) {
    const src = await readFile(inv.file, 'utf8').then((t) => new YamlSource(t)).catch(() => undefined);
    const at = (i: (typeof issues)[number]): ConfigIssue => {
      const path = ['hosts', i.index, 'tls', i.field];
      const pos = src?.has(path) ? src.at(path) : {};
      return { file: inv.file, ...pos, path: `hosts[${i.index}].tls.${i.field}`, message: i.file ? `${i.file} ${i.message}` : i.message };
    };
    throw new ConfigError(`the operator's certificates in ${inv.file} cannot be used (${issues.length} problem${issues.length === 1 ? '' : 's'}):`, {
      issues: issues.map(at).sort((a, b) => (a.line ?? 0) - (b.line ?? 0)),
      hint: 'Fix the files named above (or take tls out of those hosts to let dpgc issue its own certificates). Nothing was changed on any host.',
    });
  }
  return out;
}

/** Before any host is touched (cli/setup.ts): the operator's certificates against the cluster's CA as it is now. */
export async function checkOperatorCerts(inv: Pick<Inventory, 'hosts' | 'file'>, now = new Date(), warn?: (message: string) => void): Promise<void> {
  if (!inv.hosts.some((h) => h.tls)) return;
  const caPem = await readFile(caPathsFor(inv.file).cert, 'utf8').catch(() => undefined);
  await loadOperatorCerts(inv, caPem, now, warn);
}
