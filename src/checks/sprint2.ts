import type { RunContext } from '../context.js';
import { etcdHealthCheck, etcdMembersCheck, etcdReplicationCheck, haProcessesCheck, haproxyConfigCheck, haproxyRunningCheck, patroniConfigCheck, timingsCheck } from './ha.js';
import { targetsUpCheck } from './sprint1.js';
import type { Check } from './types.js';

/**
 * Sprint 2's criteria. Patroni runs from sprint 3 on, so "members registered"
 * and "HAProxy reaches the primary" are sprint 3's criteria (s3.*); here
 * HAProxy is judged on its config, its listeners and its stats page.
 */
export function sprint2Checks(_ctx?: RunContext): Check[] {
  return [
    etcdHealthCheck(2, 's2.etcd.healthy'),
    etcdMembersCheck(2, 's2.etcd.members'),
    etcdReplicationCheck(2, 's2.etcd.replicates'),
    patroniConfigCheck(2, 's2.patroni.config'),
    timingsCheck(2, 's2.timings.rto'),
    haproxyConfigCheck(2, 's2.haproxy.config'),
    haproxyRunningCheck(2, 's2.haproxy.running'),
    haProcessesCheck(2, 's2.processes'),
    targetsUpCheck('s2.prometheus.targets', 2, 'Prometheus scrapes every etcd member and HAProxy'),
  ];
}
