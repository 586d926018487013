import { describe, expect, it } from 'vitest';
import { deployedBy } from '../../src/checks/prometheus.js';
import { labInv } from '../helpers/lab-inventory.js';

describe('a target that is down names the sprint that starts it', () => {
  it.each([
    ['postgres', 'db1', 1],
    // The replicas' postgres_exporter arrives with the HA cluster, not with the postgres job's sprint 1.
    ['postgres', 'db2', 3],
    ['postgres', 'db3', 3],
    ['node', 'ctl', 1],
    ['pgbouncer', 'ctl', 1],
    ['etcd', 'db1', 2],
    ['haproxy', 'ctl', 2],
    ['patroni', 'db2', 3],
  ])('%s on %s: sprint %i', (job, host, sprint) => {
    expect(deployedBy(labInv(), { job, host })).toBe(sprint);
  });
});
