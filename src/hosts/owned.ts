import { posix } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * The one guard every deletion dpgc performs goes through: a path is removed
 * only when it is absolute, already normalised (so `..` and `//` cannot move
 * it somewhere else after the check), free of control characters, and
 * strictly inside a directory dpgc owns. A path that fails is a bug or a bad
 * inventory, never something to "fix up" and delete anyway.
 */
export function assertOwnedPath(path: string, owners: readonly string[], what: string): string {
  const problem = pathProblem(path);
  if (problem) throw new ConfigError(`refusing to remove ${JSON.stringify(path)} (${what}): ${problem}`, { hint: 'dpgc only deletes paths it created; check the inventory value this path comes from.' });
  const owner = owners.find((o) => !pathProblem(o) && o !== '/' && path.startsWith(`${o}/`));
  if (!owner) {
    throw new ConfigError(`refusing to remove ${path} (${what}): it is not inside a directory dpgc owns (${owners.join(', ') || 'none'})`, {
      hint: 'dpgc only deletes paths it created; check the inventory value this path comes from.',
    });
  }
  return path;
}

/** Why `path` is not a clean absolute path, or undefined when it is. */
export function pathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'not an absolute path';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'contains a control character';
  if (path.split('/').some((seg) => seg === '..' || seg === '.')) return 'contains a `.` or `..` component';
  if (path !== '/' && (posix.normalize(path) !== path || path.endsWith('/'))) return `not normalised (it normalises to ${posix.normalize(path).replace(/(.)\/$/, '$1')})`;
  return undefined;
}
