/**
 * Every secret value dpgc loads is registered here, and every string that
 * leaves the process for humans (logs, task output, error messages, --json)
 * passes through `redact`. Secrets are designed never to reach argv or logs;
 * this is the second line of defence, not the first.
 */
const secrets = new Set<string>();

export function registerSecret(value: string): void {
  // Short values would redact ordinary words; generated secrets are long.
  if (value.length >= 6) secrets.add(value);
}

export function redact(s: string): string {
  let out = s;
  for (const v of secrets) if (out.includes(v)) out = out.split(v).join('***');
  return out;
}
