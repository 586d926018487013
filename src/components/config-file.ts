import { posix } from 'node:path';
import { CommandError, HostError } from '../errors.js';
import { assertOwnedPath } from '../hosts/owned.js';
import type { Host, WriteFileOptions } from '../hosts/types.js';

/**
 * Installs a rendered config only after its own tool accepted it: the
 * candidate is written beside the target (same owner and mode, so a secret
 * is never readable by others even for a moment), checked, then moved into
 * place. `changed` is false when the target already holds this content.
 */
export async function installValidated(
  host: Host,
  path: string,
  content: string,
  opts: WriteFileOptions,
  validate: (candidate: string) => Promise<void>,
): Promise<{ changed: boolean }> {
  const current = await host.readFile(path);
  if (current === content) return { changed: (await host.writeFile(path, content, opts)).changed };
  const candidate = `${path}.dpgc-candidate`;
  await host.writeFile(candidate, content, opts);
  try {
    if (!host.dryRun) await validate(candidate);
  } finally {
    await host.exec(['rm', '-f', assertOwnedPath(candidate, [posix.dirname(path)], 'candidate config')]);
  }
  return { changed: (await host.writeFile(path, content, opts)).changed };
}

/** Runs a validator argv and turns a rejection into an error that names the file and what the tool said. */
export async function runValidator(host: Host, what: string, argv: string[], opts: { user?: string } = {}): Promise<void> {
  const r = await host.exec(argv, { mutates: false, allowFailure: true, ...(opts.user ? { user: opts.user } : {}) });
  const complaints = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trim())
    // HAProxy's [NOTICE] lines (version, path) say nothing about the file.
    .filter((l) => l && !l.startsWith('[NOTICE]'));
  if (r.exitCode !== 0) {
    throw new HostError(`${host.name}: the rendered ${what} was rejected by \`${argv[0]}\`; nothing was installed:\n    ${complaints.slice(-10).join('\n    ')}`, {
      hint: 'This is a dpgc template or inventory problem: check the inventory values it names, and report it if they look right.',
      cause: new CommandError({ host: host.name, command: argv.join(' '), exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr }),
    });
  }
}
