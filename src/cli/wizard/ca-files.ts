import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { expandHome } from '../../hosts/known-hosts.js';

/**
 * The operator's own CA, checked before it is copied beside the inventory
 * (`<inventory>.ca/`, where src/components/ca.ts looks for the cluster's CA):
 * a CA certificate, not expired, with the private key that matches it.
 */
export function caProblem(certPath: string, keyPath: string, now = new Date()): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(expandHome(certPath)));
  } catch (e) {
    return `cannot read a PEM certificate from ${certPath}: ${(e as Error).message}`;
  }
  if (!cert.ca) return `${certPath} is not a CA certificate (basicConstraints CA:TRUE is missing): give the CA's own certificate`;
  if (new Date(cert.validTo) <= now) return `${certPath} expired on ${cert.validTo}: renew the CA first`;
  let ok: boolean;
  try {
    ok = cert.checkPrivateKey(createPrivateKey(readFileSync(expandHome(keyPath))));
  } catch (e) {
    return `cannot read an unencrypted PEM private key from ${keyPath}: ${(e as Error).message}`;
  }
  return ok ? undefined : `${keyPath} is not the private key of ${certPath}`;
}
