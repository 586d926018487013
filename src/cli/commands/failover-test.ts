import type { Command } from 'commander';
import { UsageError } from '../../errors.js';

export async function failoverTestCommand(_cmd: Command): Promise<void> {
  throw new UsageError('`dpgc failover-test` is not implemented yet');
}
