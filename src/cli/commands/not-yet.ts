import { UsageError } from '../../errors.js';

export function notYet(name: string, sprint: number) {
  return async (): Promise<void> => {
    throw new UsageError(`\`dpgc ${name}\` arrives with sprint ${sprint}, which this version of dpgc does not implement yet`);
  };
}
