import { lookup } from 'node:dns/promises';
import { gatherProbe, judgeProbe } from '../../components/probe.js';
import { HostError } from '../../errors.js';
import { fingerprint, HostKeyTrust, keyType } from '../../hosts/known-hosts.js';
import type { Logger } from '../../output/log.js';
import type { HostProber, ProbeTarget } from './hosts.js';

/** The wizard's prober over real SSH: the transport's own key trust, connection and errors. */
export function sshProber(logger: Logger): HostProber {
  const seen = new Map<string, Buffer>();
  const id = (t: ProbeTarget) => `${t.address}:${t.ssh.port}`;
  return {
    async resolve(name) {
      try {
        const [first] = await lookup(name, { family: 4, all: true });
        if (first) return first.address;
      } catch (e) {
        throw new HostError(`cannot resolve ${name} to an IPv4 address (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): check the name and this machine's DNS, or give the address`);
      }
      throw new HostError(`${name} has no IPv4 address in DNS: give the address`);
    },
    async hostKey(t) {
      const { offeredHostKey } = await import('../../hosts/ssh.js');
      const trust = await HostKeyTrust.load(t, false);
      const blob = await offeredHostKey(t, trust.preferredAlgorithms());
      seen.set(id(t), blob);
      const refused = await trust.check(blob);
      if (!refused) return { known: true, fingerprint: fingerprint(blob) };
      if (trust.isNew(blob)) return { known: false, type: keyType(blob), fingerprint: fingerprint(blob) };
      throw refused;
    },
    async trust(t) {
      const blob = seen.get(id(t));
      if (!blob) throw new HostError(`${t.name}: no host key was read from ${id(t)} to trust`);
      const refused = await (await HostKeyTrust.load(t, true)).check(blob);
      if (refused) throw refused;
    },
    async probe(t, dataPath) {
      const { SshHost } = await import('../../hosts/ssh.js');
      const host = await SshHost.connect({ name: t.name, address: t.address, dryRun: false, logger, ssh: t.ssh, acceptNewHostKeys: false });
      try {
        return judgeProbe(await gatherProbe(host, dataPath), { name: t.name, user: t.ssh.user, dataPath });
      } finally {
        await host.close();
      }
    },
  };
}
