import { readFile, stat } from 'node:fs/promises';
import { ConfigError } from '../errors.js';

/**
 * A file on the control machine that only the user running dpgc may read:
 * the secrets file and the cluster CA's key. The same rules for both, so an
 * operator meets one behaviour: refused when it is a directory or not a
 * regular file, when another user owns it (that user could replace it), or
 * when group or others can read it. Nothing is repaired silently: a key that
 * was readable may have been read, and only the operator can judge that.
 */
export interface PrivateFile {
  /** How messages name it: `secrets file /x/dpgc.secrets.yaml`. */
  label: string;
  /** What another owner could do with it (after "dpgc refuses it: "). */
  ownerRisk: string;
  /** The second half of the mode hint, after the chmod (what to do if it was exposed). */
  exposed: string;
  /** The hint for a directory in its place. */
  directoryHint: string;
}

/** The file's text; undefined when it does not exist. */
export async function readPrivateFile(file: string, p: PrivateFile): Promise<string | undefined> {
  try {
    const st = await stat(file);
    if (st.isDirectory()) throw new ConfigError(`${p.label} is a directory, not a file`, { hint: p.directoryHint });
    if (!st.isFile()) {
      throw new ConfigError(`${p.label} is not a regular file (a pipe, socket or device); dpgc refuses to read it`, {
        hint: `Replace it with the file itself (mode 0600, yours).`,
      });
    }
    const me = process.geteuid?.();
    if (me !== undefined && st.uid !== me) {
      throw new ConfigError(`${p.label} belongs to uid ${st.uid}, not to the user running dpgc (uid ${me}); dpgc refuses it: ${p.ownerRisk}`, {
        hint: `If it is yours, run \`chown ${me} ${file}\`; otherwise run dpgc as its owner.`,
      });
    }
    if ((st.mode & 0o077) !== 0) {
      throw new ConfigError(`${p.label} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); dpgc refuses to use it`, {
        hint: `Run \`chmod 600 ${file}\`, ${p.exposed}`,
      });
    }
    return await readFile(file, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${p.label}: ${code ?? 'unknown error'}`, { hint: 'Check its owner and permissions (it should be yours, mode 0600).' });
  }
}
