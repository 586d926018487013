import { UsageError } from '../errors.js';

/** Placeholder: an sshd on the lab's loopback addresses (being written). */
export async function prepareLabSsh(_dir: string): Promise<{ port: number; key: string; knownHosts: string }> {
  throw new UsageError('`dpgc lab init --ssh` is not implemented yet');
}
