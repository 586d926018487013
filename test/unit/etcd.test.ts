import { describe, expect, it } from 'vitest';
import { hostPaths } from '../../src/config/paths.js';
import { clientEndpoints, parseEtcdJson, renderEtcdEnv } from '../../src/components/etcd.js';
import { parseShEnv } from '../helpers/config-parsers.js';
import { labInv } from '../helpers/lab-inventory.js';

describe('renderEtcdEnv', () => {
  it('names the member, its URLs on the host address, and the whole initial cluster', () => {
    const inv = labInv();
    const db2 = inv.hosts.find((h) => h.name === 'db2')!;
    const env = parseShEnv(renderEtcdEnv(inv, db2, hostPaths(inv, db2)));
    expect(env).toEqual({
      ETCD_NAME: 'db2',
      ETCD_DATA_DIR: '/lab/db2/var/lib/etcd/db2',
      ETCD_LISTEN_CLIENT_URLS: 'http://127.0.30.12:2379',
      ETCD_ADVERTISE_CLIENT_URLS: 'http://127.0.30.12:2379',
      ETCD_LISTEN_PEER_URLS: 'http://127.0.30.12:2380',
      ETCD_INITIAL_ADVERTISE_PEER_URLS: 'http://127.0.30.12:2380',
      ETCD_INITIAL_CLUSTER: 'db1=http://127.0.30.11:2380,db2=http://127.0.30.12:2380,db3=http://127.0.30.13:2380',
      ETCD_INITIAL_CLUSTER_STATE: 'new',
      ETCD_INITIAL_CLUSTER_TOKEN: 'dpgc-dpgc-lab',
      ETCD_HEARTBEAT_INTERVAL: '100',
      ETCD_ELECTION_TIMEOUT: '1000',
      ETCD_PRE_VOTE: 'true',
      ETCD_ENABLE_V2: 'false',
      ETCD_LOGGER: 'zap',
      ETCD_LOG_OUTPUTS: 'stderr',
    });
  });

  it('lists client endpoints of etcd hosts only', () => {
    expect(clientEndpoints(labInv())).toEqual(['http://127.0.30.11:2379', 'http://127.0.30.12:2379', 'http://127.0.30.13:2379']);
  });
});

describe('parseEtcdJson', () => {
  it('keeps 64-bit member ids exact (they overflow a double)', () => {
    const j = parseEtcdJson('{"header":{"cluster_id":17612269487461876319,"member_id":7917424258156324332},"members":[{"ID":9679314319541876395,"name":"db3"}]}') as {
      header: { member_id: string };
      members: { ID: string }[];
    };
    expect(j.header.member_id).toBe('7917424258156324332');
    expect(BigInt(j.members[0]!.ID).toString(16)).toBe('8653d51725a536ab');
  });
});
