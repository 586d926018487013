import { firewallState, openListener } from '../components/firewall.js';
import type { HostSpec } from '../config/schema.js';
import type { RunContext } from '../context.js';
import { tcpAnswer } from '../hosts/tcp.js';
import { fail, pass, type Check } from './types.js';

const REPAIR = 'Run `dpgc sprint 5` again: it loads the rendered table on each host, replacing whatever was changed by hand.';

/**
 * The firewall, proven on every host: dpgc's table is exactly the rendered
 * one (nftables' own listing of both), and it does refuse: a listener opened
 * for the check on the host's own address, on a port no rule opens, is
 * refused from the machine dpgc runs on, then closed. That the ports the
 * cluster needs still answer is what every other criterion shows.
 */
export const firewallEnforced: Check = {
  id: 's5.firewall.enforced',
  title: 'Every host’s firewall is as rendered, and a port it does not open is refused from the control machine',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const problems: string[] = [];
    const refused: string[] = [];
    await Promise.all(
      ctx.inventory.hosts.map(async (spec) => {
        try {
          const problem = await hostProblem(ctx, spec, refused);
          if (problem) problems.push(`${spec.name}: ${problem}`);
        } catch (e) {
          problems.push(`${spec.name}: ${(e as Error).message}`);
        }
      }),
    );
    const n = ctx.inventory.hosts.length;
    if (problems.length) return fail(problems.sort().join('\n'), { value: `${n - problems.length}/${n} hosts`, threshold: 'every host as rendered, a closed port refused', remedy: REPAIR });
    return pass(`${n}/${n} hosts as rendered; a listener on a closed port: ${refused.sort().join(', ')}`, 'every host as rendered, a closed port refused');
  },
};

/** What is wrong with one host's firewall, or undefined when it is as rendered and refused the probe (recorded in `refused`). */
async function hostProblem(ctx: RunContext, spec: HostSpec, refused: string[]): Promise<string | undefined> {
  const node = await ctx.pool.node(spec.name);
  const s = await firewallState(ctx.inventory, node);
  if (s.live === undefined) return `no firewall: nftables has no table inet ${s.fw.table}`;
  if (s.differences.length) return `table inet ${s.fw.table} is not as rendered: ${s.differences.join('; ')}`;
  const l = await openListener(node.host, spec.address);
  try {
    const a = await tcpAnswer(spec.address, l.port, 3000);
    if (a === 'refused' || a === 'timeout') {
      refused.push(`${spec.name}:${l.port} ${a}`);
      return undefined;
    }
    return `a listener on ${spec.address}:${l.port}, a port no rule opens, was ${a === 'accepted' ? 'reached' : 'probed with an error'} from this machine`;
  } finally {
    await l.stop();
  }
}
