import type { Command } from 'commander';
import { UsageError } from '../../errors.js';

export async function poolTestCommand(_cmd: Command): Promise<void> {
  throw new UsageError('`dpgc pool-test` is not implemented yet');
}
