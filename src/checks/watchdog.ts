import { currentLeader } from '../components/cluster.js';
import { memberStatus, restTarget } from '../components/patroni.js';
import { watchdogProblem } from '../components/watchdog.js';
import { fail, pass, warn, type Check } from './types.js';

/**
 * Whether a hung primary would be reset. Never a silent pass: with no device
 * (the lab, a host without softdog) it says so, as a warning unless the
 * inventory makes the watchdog required.
 */
export function watchdogCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'A watchdog resets a primary that hangs (Patroni watchdog)',
    sprint,
    kind: 'read',
    async run(ctx) {
      const mode = ctx.inventory.patroni.watchdog;
      if (mode === 'off') return warn('the watchdog is off in the inventory (patroni.watchdog: off): a primary that hangs is resumed, not reset', { value: 'off', remedy: 'Set patroni.watchdog to automatic (or required) and run `dpgc sprint 2` and `dpgc sprint 3`.' });
      const problems = (await Promise.all((await ctx.pool.nodesWith('postgres')).map((n) => watchdogProblem(n)))).filter((p): p is string => p !== undefined);
      const leader = await currentLeader(ctx.inventory);
      const failed = (await memberStatus(restTarget(ctx.inventory, leader)).catch(() => undefined)) as { watchdog_failed?: boolean } | undefined;
      if (failed?.watchdog_failed) problems.push(`${leader.name}: Patroni reports its watchdog unhealthy`);
      const value = `${mode}, ${problems.length ? `${problems.length} problem(s)` : 'every host has one'}`;
      if (!problems.length) return pass(value, 'a usable /dev/watchdog on every postgres host');
      const lab = ctx.inventory.hosts.every((h) => h.services === 'supervised');
      const remedy = lab
        ? 'The lab’s hosts share this machine’s kernel and dpgc does not load kernel modules on it; on real hosts `dpgc sprint 2` loads softdog.'
        : 'Run `dpgc sprint 2` (loads softdog, hands /dev/watchdog to postgres), then `dpgc sprint 3`.';
      const detail = `${problems.join('; ')}: a primary that hangs past ttl is resumed, not reset`;
      return mode === 'required' ? fail(detail, { value, remedy }) : warn(detail, { value, remedy });
    },
  };
}
