import { deadServices, HA_SERVICES } from '../components/cluster.js';
import { fail, pass, type Check } from './types.js';

/**
 * The HA layer's daemons as processes, in sprints 2 and 3: every expected one
 * is alive; a dead one is named with its host and what to do.
 */
export function haProcessesCheck(sprint: number, id: string, services = HA_SERVICES.filter((s) => s.sprint <= sprint)): Check {
  return {
    id,
    title: `Every ${[...new Set(services.map((s) => s.service))].join(', ')} process is running`,
    sprint,
    kind: 'state',
    async run(ctx) {
      const dead = await deadServices(ctx, services);
      if (dead.length) return fail(dead.map((d) => d.problem).join('\n'), { value: `${dead.length} down`, remedy: dead.map((d) => d.remedy).join(' ') });
      return pass('all running');
    },
  };
}
