import { monitoredSprint, prometheusTarget, scrapeTargets } from '../components/prometheus.js';
import { metricsWeb } from '../components/metrics-web.js';
import { rulesCheck, targetsUp, type RuleInput } from './prometheus.js';
import { fail, pass, type Check } from './types.js';

/** What the security alerts read (templates/prometheus/rules/security.yml): mtail's counters from PostgreSQL's log, the certificates' ends, the live and the rendered pg_hba, ALTER SYSTEM values. */
export const SECURITY_ALERT_INPUTS: RuleInput[] = [
  { what: "refused logins (mtail, PostgreSQL's log)", expr: 'postgresql_auth_failures_total' },
  { what: "superuser logins over TCP (mtail, PostgreSQL's log)", expr: 'postgresql_superuser_network_logins_total' },
  { what: "certificates' ends (node_exporter's textfile)", expr: 'dpgc_certificate_not_after_seconds' },
  { what: "the live pg_hba rules' hash (postgres_exporter's pg_local_config)", expr: 'pg_local_config_hba_hash' },
  { what: "the rendered pg_hba rules' hash (node_exporter's textfile)", expr: 'dpgc_pg_hba_rendered_hash' },
  { what: "ALTER SYSTEM values (postgres_exporter's pg_local_config)", expr: 'pg_local_config_alter_system_settings' },
];

const rules = rulesCheck('s5.alerts.security', 5, '', SECURITY_ALERT_INPUTS);

/**
 * The security alerts can fire: their rules are loaded, evaluate and pass
 * their promtool tests as installed, and Prometheus scrapes mtail on every
 * PostgreSQL host (one member's mtail down and that member's refused logins
 * go unseen, though the others' series keep the inputs present).
 */
export const securityAlerts: Check = {
  id: 's5.alerts.security',
  title: 'Security alerts (refused-login bursts, superuser logins over the network, certificates near their end, pg_hba or settings changed outside dpgc) are loaded, evaluate, pass their promtool tests, every series they read is scraped, and mtail on every PostgreSQL host',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const tls = await metricsWeb(ctx);
    const mtail = scrapeTargets(ctx.inventory, await monitoredSprint(ctx, 5)).filter((t) => t.job === 'mtail');
    const [r, up] = await Promise.all([rules.run(ctx), targetsUp(prometheusTarget(ctx.inventory, tls), tls, mtail)]);
    const value = `${r.value ?? ''}; mtail ${mtail.length - up.down.length}/${mtail.length} scraped`;
    const threshold = `${r.threshold ?? ''}; mtail up on every PostgreSQL host`;
    const problems = [...(r.verdict === 'pass' ? [] : [r.detail ?? r.verdict]), ...up.problems];
    return problems.length
      ? fail(problems.join('\n'), { value, threshold, remedy: 'Run `dpgc sprint 5`: it starts mtail on every PostgreSQL host and installs the rules with their tests.' })
      : pass(value, threshold);
  },
};
