import type { Command } from 'commander';
import { UsageError } from '../../errors.js';

export async function statusCommand(_cmd: Command): Promise<void> {
  throw new UsageError('`dpgc status` is not implemented yet');
}
