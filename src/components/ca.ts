import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError, HostError } from '../errors.js';
import { silentLogger, type Logger } from '../output/log.js';
import type { GlobalOptions } from '../context.js';
import { LocalHost } from '../hosts/local.js';
import { assertOwnedPath } from '../hosts/owned.js';
import type { Host } from '../hosts/types.js';
import type { HostPool } from '../hosts/pool.js';
import type { HostSpec, Inventory } from '../config/schema.js';
import { readPrivateFile } from '../config/private-file.js';

/**
 * The cluster's certificate authority: one per cluster, its key on the
 * machine dpgc runs on (beside the inventory, its secrets and its state, mode
 * 0600, never on a cluster host and never in argv: openssl reads it from its
 * file). Host keys are made on the host that uses them and never leave it:
 * the host sends a certificate request, the control machine signs it.
 *
 * Every certificate dpgc issues goes through here (pgBackRest's TLS server
 * now; PostgreSQL, Patroni and etcd with sprint 5), so the rules are in one
 * place: what to issue is decided by pure functions (certDecision), the
 * cryptography is openssl's, run through the host adapter.
 */

/** Re-issue a certificate that expires sooner than this. */
export const RENEW_BEFORE_DAYS = 30;
export const CA_DAYS = 3650;
export const CERT_DAYS = 397;
/** The subject of a CA dpgc generates; anything else at the CA's path is the operator's. */
const CA_ORGANIZATION = 'dpgc';
const caCommonName = (cluster: string) => `dpgc ${cluster} CA`;

/** Pure: is this the CA certificate dpgc itself generated for `cluster` (self-signed, dpgc's subject)? */
export function isOwnCa(cert: string | X509Certificate, cluster: string): boolean {
  const c = typeof cert === 'string' ? parseCertificate(cert) : cert;
  const want = `O=${CA_ORGANIZATION}\nCN=${caCommonName(cluster)}`;
  return c !== undefined && c.subject === want && c.issuer === want;
}

function parseCertificate(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}
/**
 * The CA's files on the control machine, checked before a command touches a
 * host (cli/setup.ts), like the secrets file: its key private to the user
 * running dpgc (a key others can read signs certificates for anyone), and the
 * key, the certificate and the cluster fitting together. A CA dpgc made is
 * renewed when it ends; an operator's own CA is theirs to renew, so an
 * expired one is refused rather than replaced. No files: nothing to check (the
 * sprint that needs the CA makes it).
 */
export async function checkCaFiles(paths: CaPaths, cluster: string, now = new Date()): Promise<void> {
  const key = await readPrivateFile(paths.key, {
    label: `the cluster CA's key ${paths.key}`,
    ownerRisk: 'its owner could sign certificates the cluster trusts',
    exposed: 'and treat the CA as exposed: move the CA directory away and re-run the sprints that issue certificates (4 and 5), which make a new CA and reissue every certificate.',
    directoryHint: `Move the directory away: dpgc keeps the CA's key in that file, in ${paths.dir}.`,
  });
  const certPem = await readFile(paths.cert, 'utf8').catch(() => undefined);
  if (certPem === undefined) return;
  const cert = parseCertificate(certPem);
  const own = cert !== undefined && isOwnCa(cert, cluster);
  if (key === undefined) {
    // dpgc would make a new key and a new self-signed certificate over the operator's.
    if (own) return;
    throw new ConfigError(`the CA certificate ${paths.cert} has no key beside it (${paths.key})`, {
      hint: `Put the CA's private key at ${paths.key} (mode 0600): dpgc signs each host's certificate with it. To let dpgc make a CA of its own instead, move ${paths.dir} away.`,
    });
  }
  if (!cert) throw new ConfigError(`${paths.cert} is not a PEM certificate`, { hint: `Put the CA's certificate there (PEM), or move ${paths.dir} away to let dpgc make a CA.` });
  if (!cert.ca) throw new ConfigError(`${paths.cert} is not a CA certificate (basicConstraints CA:TRUE is missing)`, { hint: 'Give dpgc a CA certificate (an intermediate of your own PKI works): a leaf certificate cannot sign hosts\' certificates.' });
  let publicKey: string;
  try {
    publicKey = createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'pem' }).toString();
  } catch (e) {
    throw new ConfigError(`the cluster CA's key ${paths.key} cannot be read as an unencrypted private key (${(e as Error).message})`, {
      hint: 'dpgc signs with openssl without a passphrase: give it the key in PEM without one (`openssl pkey -in KEY -out KEY.plain`), mode 0600.',
    });
  }
  if (publicKey !== cert.publicKey.export({ type: 'spki', format: 'pem' }).toString()) {
    throw new ConfigError(`the cluster CA's key ${paths.key} does not belong to its certificate ${paths.cert}`, {
      hint: 'Put the key and the certificate of the same CA side by side: certificates signed with this key would not verify against that certificate.',
    });
  }
  if (!own && Date.parse(cert.validTo) <= now.getTime()) {
    throw new ConfigError(`the cluster CA's certificate ${paths.cert} (your own CA) expired on ${new Date(cert.validTo).toISOString().slice(0, 10)}`, {
      hint: 'Renew it in your PKI and put the new certificate there (dpgc renews only a CA it made); then re-run the sprints, which reissue the hosts\' certificates.',
    });
  }
}

/** P-256: what every TLS stack in the cluster accepts (pgBackRest, PostgreSQL, Go's etcd, Python's Patroni). */
const KEY_ALGORITHM = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];

export interface CaPaths {
  dir: string;
  key: string;
  cert: string;
}

/** `<inventory>.ca/` beside the inventory, like `<inventory>.secrets.yaml`. */
export function caPathsFor(inventoryFile: string): CaPaths {
  const dir = join(dirname(inventoryFile), `${basename(inventoryFile).replace(/\.ya?ml$/, '')}.ca`);
  return { dir, key: join(dir, 'ca.key'), cert: join(dir, 'ca.crt') };
}

/**
 * dpgc's own client certificate on the control machine, `<inventory>.ca/client/`:
 * etcd requires one from sprint 5 on (the run lock, lock-etcd.ts).
 */
export function controlClientFiles(caDir: string) {
  const dir = `${caDir}/client`;
  return { dir, cert: `${dir}/dpgc.crt`, key: `${dir}/dpgc.key`, ca: `${dir}/ca.crt` };
}

/** What a certificate must say. `name` is the file base on the host (`<tlsDir>/<name>.crt`). */
export interface CertRequest {
  name: string;
  /** Subject CN: pgBackRest's tls-server-auth and PostgreSQL's cert auth match on it. */
  cn: string;
  dns: string[];
  ips: string[];
  usage: ('server' | 'client')[];
  /**
   * Its CN is an identity another party authorizes (pgBackRest's tls-server-auth names the hosts it
   * accepts by CN): always issued by the CA, never replaced by an operator's own certificate.
   */
  identity?: true;
}

/**
 * Pure: whether an operator's own certificate for the host (inventory hosts[i].tls) stands in for
 * this one: a server certificate that is no one's identity. Client certificates (Patroni's and
 * Prometheus's for etcd, dpgc's own) and pgBackRest's stay the CA's, so the CA key stays needed.
 */
export const operatorMayServe = (req: CertRequest): boolean => req.usage.includes('server') && req.identity !== true;

/**
 * The operator's own certificate for one host, read and checked on the control machine
 * (components/host-certs.ts): installed instead of a certificate from the CA where
 * operatorMayServe, never renewed by dpgc.
 */
export interface OperatorCert {
  /** Where the inventory names it: `hosts[2].tls`. */
  field: string;
  certFile: string;
  keyFile: string;
  /** The file as given: the host's certificate, then any chain. */
  certPem: string;
  keyPem: string;
  leaf: X509Certificate;
}

const EKU = { server: '1.3.6.1.5.5.7.3.1', client: '1.3.6.1.5.5.7.3.2', any: '2.5.29.37.0' } as const;

/**
 * Pure: what `cert` lacks to serve `req`, checked the way TLS clients check a server: subject
 * alternative names only (Go's clients, etcd and the exporters among them, ignore the CN), a
 * wildcard for one whole label; extended key usages, none at all meaning any (RFC 5280).
 */
export function coverageGaps(cert: X509Certificate, req: Pick<CertRequest, 'dns' | 'ips' | 'usage'>): { names: string[]; usage: ('server' | 'client')[] } {
  const names = [
    ...req.dns.filter((d) => cert.checkHost(d, { subject: 'never', partialWildcards: false, multiLabelWildcards: false }) === undefined),
    ...req.ips.filter((ip) => cert.checkIP(ip) === undefined),
  ];
  const eku = cert.keyUsage;
  const usage = eku === undefined || eku.includes(EKU.any) ? [] : req.usage.filter((u) => !eku.includes(EKU[u]));
  return { names: [...new Set(names)], usage };
}

/** What an existing certificate says (read with node:crypto, which parses and never issues). */
export interface CertFacts {
  cn: string | undefined;
  dns: string[];
  ips: string[];
  usage: ('server' | 'client')[];
  notAfter: Date;
  notBefore: Date;
  /** Signed by the current CA's key. */
  signedByCa: boolean;
  /** The host's key file holds the key this certificate is for. */
  keyMatches: boolean;
}

export type CertDecision = { issue: false } | { issue: true; reason: string };

const sorted = (a: string[]) => [...new Set(a)].sort();
const sameSet = (a: string[], b: string[]) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

/**
 * Pure: keep a certificate that is valid, ours, matching and not about to
 * expire; otherwise say why it is re-issued. `reissueBefore` (dpgc rotate
 * --certs): one issued before that moment is re-issued too. A certificate's
 * notBefore has whole seconds, so the moment is taken to the second below:
 * one this run issued is then never issued again by a later step of the run.
 */
export function certDecision(have: CertFacts | undefined, want: CertRequest, now: Date, reissueBefore?: Date): CertDecision {
  if (!have) return { issue: true, reason: 'no certificate yet' };
  if (reissueBefore && have.notBefore.getTime() < Math.floor(reissueBefore.getTime() / 1000) * 1000) {
    return { issue: true, reason: `rotation: issued ${have.notBefore.toISOString()}, before this run` };
  }
  if (!have.keyMatches) return { issue: true, reason: 'the certificate does not match the key beside it' };
  if (!have.signedByCa) return { issue: true, reason: "not signed by this cluster's CA" };
  if (have.cn !== want.cn) return { issue: true, reason: `CN is ${have.cn ?? '(none)'}, want ${want.cn}` };
  if (!sameSet(have.dns, want.dns) || !sameSet(have.ips, want.ips)) {
    return { issue: true, reason: `names changed (${sorted([...have.dns, ...have.ips]).join(', ')} → ${sorted([...want.dns, ...want.ips]).join(', ')})` };
  }
  if (!sameSet(have.usage, want.usage)) return { issue: true, reason: `usage changed (${sorted(have.usage).join(',')} → ${sorted(want.usage).join(',')})` };
  const days = (have.notAfter.getTime() - now.getTime()) / 86_400_000;
  if (days < RENEW_BEFORE_DAYS) return { issue: true, reason: days <= 0 ? 'expired' : `expires in ${Math.floor(days)} days` };
  return { issue: false };
}

/** Pure: the openssl extension section for a request (SANs, key usage, EKU). */
export function extensionsFor(req: CertRequest): string {
  const san = [...sorted(req.dns).map((d) => `DNS:${d}`), ...sorted(req.ips).map((i) => `IP:${i}`)];
  const eku = req.usage.map((u) => (u === 'server' ? 'serverAuth' : 'clientAuth'));
  return [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    `extendedKeyUsage = ${eku.join(', ')}`,
    ...(san.length ? [`subjectAltName = ${san.join(', ')}`] : []),
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n');
}

/** Names a CN or SAN may hold: they reach openssl's -subj and extension syntax, where `/ , = \` mean something. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;
const IP = /^\d{1,3}(\.\d{1,3}){3}$/;

export function requestProblem(req: CertRequest): string | undefined {
  if (!/^[a-z][a-z0-9-]{0,40}$/.test(req.name)) return `file name ${JSON.stringify(req.name)}`;
  if (!NAME.test(req.cn)) return `CN ${JSON.stringify(req.cn)}`;
  const bad = [...req.dns.filter((d) => !NAME.test(d)), ...req.ips.filter((i) => !IP.test(i))];
  if (bad.length) return `subject alternative name(s) ${bad.map((b) => JSON.stringify(b)).join(', ')}`;
  if (!req.usage.length) return 'no usage';
  return undefined;
}

/** Pure: what an existing certificate says, or undefined when the PEM does not parse. */
export function readCertFacts(pem: string, caCertPem: string, keyPublicPem: string | undefined): CertFacts | undefined {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(pem);
    ca = new X509Certificate(caCertPem);
  } catch {
    return undefined;
  }
  const sans = (cert.subjectAltName ?? '').split(',').map((s) => s.trim());
  const eku = cert.keyUsage ?? [];
  return {
    cn: /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1],
    dns: sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4)),
    ips: sans.filter((s) => s.startsWith('IP Address:')).map((s) => s.slice(11)),
    // node lists extended key usages by OID.
    usage: [...(eku.includes('1.3.6.1.5.5.7.3.1') ? ['server' as const] : []), ...(eku.includes('1.3.6.1.5.5.7.3.2') ? ['client' as const] : [])],
    notAfter: new Date(cert.validTo),
    notBefore: new Date(cert.validFrom),
    signedByCa: cert.checkIssued(ca) && cert.verify(ca.publicKey),
    keyMatches: keyPublicPem !== undefined && cert.publicKey.export({ type: 'spki', format: 'pem' }).toString().trim() === keyPublicPem.trim(),
  };
}

/**
 * The CA on the control machine. `control` is a host adapter for the machine
 * dpgc runs on (a LocalHost), so openssl runs, and --dry-run is decided, in
 * the one place every command runs.
 */
/** What opening the CA for a run needs from the run's context. */
export interface CaRun {
  inventory: Pick<Inventory, 'file' | 'cluster' | 'hosts'>;
  logger?: Logger;
  options?: Pick<GlobalOptions, 'dryRun'>;
  reissueCertsBefore?: Date;
}

export class CertificateAuthority {
  private constructor(
    readonly control: Host,
    readonly paths: CaPaths,
    readonly certPem: string,
    /** Re-issue every certificate issued before this moment (`dpgc rotate --certs`). */
    readonly reissueBefore?: Date,
    /** The operator's own certificates by host name (inventory hosts[i].tls): installed, never issued. */
    readonly operatorCerts: ReadonlyMap<string, OperatorCert> = new Map(),
  ) {}

  /** Control-machine host adapter, honouring --dry-run. */
  static controlHost(o: { dryRun: boolean; logger: Logger }): Host {
    return new LocalHost({ name: 'control', address: '127.0.0.1', dryRun: o.dryRun, logger: o.logger });
  }

  /**
   * The cluster's CA, created on first use (key 0600 in a 0700 directory),
   * its certificate renewed with the same key when it nears expiry (so every
   * certificate it signed stays valid). `mayCreate` is false for commands that
   * only read: a missing CA is then a configuration error, as with secrets.
   */
  static async open(
    control: Host,
    inventoryFile: string,
    cluster: string,
    o: { mayCreate: boolean; reissueBefore?: Date; hosts?: HostSpec[] },
  ): Promise<{ ca: CertificateAuthority; changed: boolean }> {
    const paths = caPathsFor(inventoryFile);
    const [key, cert] = await Promise.all([control.readFile(paths.key), control.readFile(paths.cert)]);
    let changed = false;
    if (key === undefined) {
      if (!o.mayCreate) {
        throw new ConfigError(`the cluster's certificate authority ${paths.key} does not exist`, {
          hint: `Restore ${paths.dir} from where you keep it (the machine that set the cluster up), or run the sprint that creates it (\`dpgc sprint 4\`).`,
        });
      }
      await control.exec(['sh', '-c', 'umask 077; mkdir -p -- "$1" && chmod 700 -- "$1"', 'sh', paths.dir]);
      // Why sh: umask before the key exists, so it is never readable by others, even for a moment.
      await control.exec(['sh', '-c', 'umask 077; exec openssl genpkey "$@"', 'sh', ...KEY_ALGORITHM, '-out', paths.key]);
      changed = true;
    }
    // Missing or unreadable: made anew. Near its end: renewed with the same key, but only a CA dpgc made:
    // re-signing an operator's own CA would replace their certificate (and its chain to their root) with
    // a self-signed one. Theirs is reported by r.certs.valid.
    const current = cert === undefined ? undefined : parseCertificate(cert);
    const nearEnd = current !== undefined && (Date.parse(current.validTo) - Date.now()) / 86_400_000 < RENEW_BEFORE_DAYS;
    if (changed || !current || (nearEnd && isOwnCa(current, cluster))) {
      await control.exec([
        'openssl', 'req', '-x509', '-new', '-key', paths.key, '-sha256', '-days', String(CA_DAYS),
        '-subj', `/O=${CA_ORGANIZATION}/CN=${caCommonName(cluster)}`,
        '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
        '-out', paths.cert,
      ]);
      changed = true;
    }
    const pem = (await control.readFile(paths.cert)) ?? '';
    // Checked again as the run opens the CA, by the rules cli/setup.ts checked them with (a file changed since fails here).
    // Imported when needed: host-certs.ts knows every component's certificate request, and they import this module.
    const operator = o.hosts?.some((h) => h.tls)
      ? await (await import('./host-certs.js')).loadOperatorCerts({ file: inventoryFile, hosts: o.hosts }, pem || undefined)
      : new Map<string, OperatorCert>();
    return { ca: new CertificateAuthority(control, paths, pem, o.reissueBefore, operator), changed };
  }

  /**
   * The CA for one run, opened (or created) when the first certificate needs
   * it and then shared, so a sprint that issues none never touches it. The
   * run's `reissueCertsBefore` (set by `dpgc rotate --certs`) reaches every
   * certificate issued through it.
   */
  static lazy(ctx: CaRun): () => Promise<CertificateAuthority> {
    const dryRun = ctx.options?.dryRun ?? false;
    const logger = ctx.logger ?? silentLogger;
    let ca: Promise<CertificateAuthority> | undefined;
    return () =>
      (ca ??= CertificateAuthority.open(CertificateAuthority.controlHost({ dryRun, logger }), ctx.inventory.file, ctx.inventory.cluster, {
        mayCreate: true,
        hosts: ctx.inventory.hosts,
        ...(ctx.reissueCertsBefore ? { reissueBefore: ctx.reissueCertsBefore } : {}),
      }).then((r) => r.ca));
  }

  /**
   * Ensures `<dir>/<name>.key` (made on the host, mode 0600, owned by `owner`),
   * `<dir>/<name>.crt` signed by this CA for exactly `req`, and `<dir>/ca.crt`.
   * Unchanged when the certificate in place is valid, ours and matching.
   * Where the operator gave the host a certificate of their own (operatorMayServe),
   * that one is installed instead, and never re-issued (not even by `dpgc rotate --certs`).
   */
  async ensureHostCert(host: Host, dir: string, req: CertRequest, owner: string, now = new Date()): Promise<{ changed: boolean; reason?: string }> {
    const problem = requestProblem(req);
    if (problem) throw new ConfigError(`cannot issue a certificate for ${host.name}: bad ${problem}`, { hint: 'Host names and addresses come from the inventory; fix them there.' });
    const keyFile = `${dir}/${req.name}.key`;
    const certFile = `${dir}/${req.name}.crt`;
    // root's: one copy serves every certificate in the directory, whatever user each belongs to (postgres, prometheus…).
    let changed = (await host.writeFile(`${dir}/ca.crt`, this.certPem, { mode: 0o644, owner: 'root' })).changed;
    const pem = await host.readFile(certFile);
    const pub = await host.exec(['openssl', 'pkey', '-in', keyFile, '-pubout'], { mutates: false, allowFailure: true });
    const facts = pem === undefined ? undefined : readCertFacts(pem, this.certPem, pub.exitCode === 0 ? pub.stdout : undefined);
    const operator = operatorMayServe(req) ? this.operatorCerts.get(host.name) : undefined;
    if (operator) return this.installOperatorCert(host, { keyFile, certFile }, req, owner, operator, pem === operator.certPem && facts?.keyMatches === true, changed);
    const d = certDecision(facts, req, now, this.reissueBefore);
    if (!d.issue) return { changed };
    if (host.dryRun) {
      await host.exec(['openssl', 'req', '-new', '-key', keyFile, '-subj', `/CN=${req.cn}`]);
      return { changed: true, reason: d.reason };
    }
    // A new key each time a certificate is issued: a key whose certificate was replaced is not trusted to be secret.
    // Key and certificate are made beside the pair in force and swapped in together at the end: the exporters,
    // Prometheus and Alertmanager read the pair at every TLS handshake, and a new key beside the old
    // certificate, for as long as signing takes, fails the handshakes (and scrapes) made meanwhile.
    // Why sh: umask before the key exists, then it is handed to its owner; paths and owner are "$1", "$2", never spliced in.
    const [newKey, newCert] = [`${keyFile}.dpgc-new`, `${certFile}.dpgc-new`];
    await host.exec([
      'sh', '-c', 'set -e; umask 077; t=$1 o=$2; mkdir -p -- "$(dirname -- "$t")"; shift 2; openssl genpkey "$@" -out "$t"; chown -- "$o:$o" "$t"',
      'sh', newKey, owner, ...KEY_ALGORITHM,
    ]);
    const csr = await host.exec(['openssl', 'req', '-new', '-key', newKey, '-subj', `/CN=${req.cn}`]);
    const signed = await this.sign(csr.stdout, req);
    await host.writeFile(newCert, signed, { mode: 0o644, owner });
    await swapIn(host, { newKey, keyFile, newCert, certFile });
    changed = true;
    return { changed, reason: d.reason };
  }

  /**
   * The operator's certificate and key in place of the CA's, written like the CA's (key 0600 and
   * certificate 0644, both the service's own; the key over stdin, never argv) and swapped in
   * together. `inPlace`: that certificate is there with its key beside it, so only a mode or an
   * owner can differ, and nothing is swapped.
   */
  private async installOperatorCert(
    host: Host,
    f: { keyFile: string; certFile: string },
    req: CertRequest,
    owner: string,
    op: OperatorCert,
    inPlace: boolean,
    caChanged: boolean,
  ): Promise<{ changed: boolean; reason?: string }> {
    // host-certs.ts checked every request it knows of before the run; this holds for any other.
    const gaps = coverageGaps(op.leaf, req);
    if (gaps.names.length || gaps.usage.length) {
      throw new ConfigError(`${op.field}.cert ${op.certFile} cannot serve ${req.name} on ${host.name}: ${[...gaps.names.map((n) => `${n} is not among its names`), ...gaps.usage.map((u) => `no ${u}Auth usage`)].join('; ')}`, {
        hint: `Give ${host.name} a certificate that covers it, or take ${op.field} out of the inventory to let dpgc issue its own. Nothing else on ${host.name} was changed.`,
      });
    }
    if (inPlace) {
      const k = await host.writeFile(f.keyFile, op.keyPem, { mode: 0o600, owner });
      const c = await host.writeFile(f.certFile, op.certPem, { mode: 0o644, owner });
      return { changed: caChanged || k.changed || c.changed };
    }
    const [newKey, newCert] = [`${f.keyFile}.dpgc-new`, `${f.certFile}.dpgc-new`];
    await host.writeFile(newKey, op.keyPem, { mode: 0o600, owner });
    await host.writeFile(newCert, op.certPem, { mode: 0o644, owner });
    await swapIn(host, { newKey, keyFile: f.keyFile, newCert, certFile: f.certFile });
    return { changed: true, reason: `installed the operator's own certificate (${op.field}.cert), not one from the CA` };
  }

  /** Signs a certificate request on the control machine (the CA key is read by openssl from its file). */
  private async sign(csrPem: string, req: CertRequest): Promise<string> {
    const ext = `${this.paths.dir}/${req.cn}-${randomBytes(4).toString('hex')}.ext`;
    await this.control.writeFile(ext, extensionsFor(req), { mode: 0o600 });
    try {
      const r = await this.control.exec(
        ['openssl', 'x509', '-req', '-CA', this.paths.cert, '-CAkey', this.paths.key, '-sha256', '-days', String(CERT_DAYS), '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-extfile', ext],
        { input: csrPem },
      );
      if (!r.stdout.includes('BEGIN CERTIFICATE')) throw new HostError(`signing a certificate for ${req.cn} gave no certificate: ${r.stderr.trim()}`);
      return r.stdout;
    } finally {
      await this.control.exec(['rm', '-f', assertOwnedPath(ext, [this.paths.dir], 'certificate extensions')]);
    }
  }
}

/** A new key and certificate made beside the pair in force, put in its place together. */
async function swapIn(host: Host, f: { newKey: string; keyFile: string; newCert: string; certFile: string }): Promise<void> {
  await host.exec(['sh', '-c', 'mv -f -- "$1" "$2" && mv -f -- "$3" "$4"', 'sh', f.newKey, f.keyFile, f.newCert, f.certFile]);
}

/** A certificate in place on a host (or the CA's on the control machine), as read from its file. */
export interface CertInPlace {
  where: string;
  file: string;
  cn: string | undefined;
  /** undefined when the file does not parse as a certificate. */
  notAfter: Date | undefined;
  fingerprint?: string;
  /** The operator's own (inventory hosts[i].tls.cert): dpgc does not renew it. */
  operator?: string;
}

/** Every certificate dpgc keeps in a host's TLS directory (`*.crt`, the CA's copy included). */
export async function certificatesIn(host: Host, dir: string): Promise<CertInPlace[]> {
  const ls = await host.exec(['find', dir, '-maxdepth', '1', '-type', 'f', '-name', '*.crt'], { mutates: false, allowFailure: true });
  const files = ls.exitCode === 0 ? ls.stdout.split('\n').filter(Boolean).sort() : [];
  return Promise.all(files.map(async (file) => ({ where: host.name, file, ...parseCert((await host.readFile(file)) ?? '') })));
}

export function parseCert(pem: string): { cn: string | undefined; notAfter: Date | undefined; fingerprint?: string } {
  try {
    const c = new X509Certificate(pem);
    return { cn: /(?:^|\n)CN=([^\n]*)/.exec(c.subject)?.[1], notAfter: new Date(c.validTo), fingerprint: c.fingerprint256 };
  } catch {
    return { cn: undefined, notAfter: undefined };
  }
}

/** Every certificate dpgc keeps: each host's TLS directory, and the CA's own on the control machine. */
export async function clusterCertificates(inv: Pick<Inventory, 'hosts' | 'file'>, pool: Pick<HostPool, 'node'>, logger: Logger): Promise<CertInPlace[]> {
  const control = CertificateAuthority.controlHost({ dryRun: false, logger });
  const onHosts = await Promise.all(
    inv.hosts.map(async (h, i) => {
      const n = await pool.node(h.name);
      const certs = await certificatesIn(n.host, n.paths.tlsDir);
      // The operator's certificate is told apart by its fingerprint: status and readiness say dpgc will not renew it.
      const theirs = h.tls ? parseCert((await control.readFile(h.tls.cert)) ?? '').fingerprint : undefined;
      return certs.map((c) => (theirs && c.fingerprint === theirs ? { ...c, operator: `hosts[${i}].tls.cert ${h.tls!.cert}` } : c));
    }),
  );
  const caFile = caPathsFor(inv.file).cert;
  const caPem = await control.readFile(caFile);
  return [...onHosts.flat(), ...(caPem === undefined ? [] : [{ where: 'control machine', file: caFile, ...parseCert(caPem) }])];
}

/** Pure: the certificate that ends first (an unreadable one counts as ended), or undefined when there is none. */
export function nearestEnd(certs: CertInPlace[]): CertInPlace | undefined {
  const t = (c: CertInPlace) => c.notAfter?.getTime() ?? -Infinity;
  return certs.reduce<CertInPlace | undefined>((a, c) => (a === undefined || t(c) < t(a) ? c : a), undefined);
}

/** Pure: certificates valid for fewer than `minDays` (or unreadable), soonest first, each said with where and when. */
export function expiringCerts(certs: CertInPlace[], now: Date, minDays = RENEW_BEFORE_DAYS): string[] {
  return certs
    .map((c) => ({ c, days: c.notAfter ? (c.notAfter.getTime() - now.getTime()) / 86_400_000 : -Infinity }))
    .filter((x) => x.days < minDays)
    .sort((a, b) => a.days - b.days)
    .map(({ c, days }) =>
      !c.notAfter
        ? `${c.where}: ${c.file} is not a readable certificate`
        : `${c.where}: ${c.file}${c.cn ? ` (CN ${c.cn})` : ''} ${days <= 0 ? 'expired' : 'expires'} ${c.notAfter.toISOString().slice(0, 10)}${days > 0 ? `, in ${Math.floor(days)} days` : ''}` +
          (c.operator ? `: the operator's own certificate (${c.operator}), which dpgc never renews: put a renewed one there and run \`dpgc sprint 5\`` : ''),
    );
}

