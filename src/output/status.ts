import chalk from 'chalk';
import type { ClusterView } from '../components/cluster.js';

/**
 * `dpgc status` for humans, and the list of things wrong with a view (pure,
 * so status and tests agree on what "unhealthy" means).
 */
export interface StatusProblem {
  what: string;
  remedy: string;
}

export function viewProblems(v: ClusterView): StatusProblem[] {
  const out: StatusProblem[] = v.services.map((s) => ({ what: s.problem, remedy: s.remedy }));
  if (v.membersError) out.push({ what: `Patroni: ${v.membersError}`, remedy: 'Run `dpgc sprint 3` to start Patroni where it is down.' });
  else if (v.paused) out.push({ what: 'the cluster is paused (maintenance mode): Patroni will not fail over', remedy: 'If dpgc paused it (an interrupted sprint 5), `dpgc sprint 3` resumes it; if you did, `patronictl -c <patroni.yml> resume` once the maintenance is over.' });
  if (!v.membersError && !v.leader) out.push({ what: 'the cluster has no leader', remedy: 'Read patroni.log on the members; a leader needs etcd healthy and a member able to promote.' });
  for (const m of v.members) {
    if (m.name === v.leader || v.membersError) continue;
    if (m.role === 'absent') out.push({ what: `${m.name} is not a member of the cluster`, remedy: `Start Patroni on ${m.name} with \`dpgc sprint 3\`.` });
    else if (m.replication !== 'streaming') out.push({ what: `${m.name} is ${m.state}, ${m.replication ?? 'not replicating'}`, remedy: `Read patroni.log on ${m.name}.` });
  }
  const bad = v.etcd.endpoints.filter((e) => !e.health);
  if (bad.length) out.push({ what: `etcd unhealthy: ${bad.map((b) => b.endpoint).join(', ')}${v.etcd.error ? ` (${v.etcd.error})` : ''}`, remedy: 'Read etcd.log on those hosts; `dpgc sprint 2` starts a member that is down.' });
  for (const h of v.haproxy) {
    if (h.error) {
      out.push({ what: `HAProxy on ${h.host}: ${h.error}`, remedy: `Run \`dpgc sprint 2\` to start HAProxy on ${h.host}.` });
      continue;
    }
    const up = h.servers.filter((s) => s.backend === 'primary' && s.status.startsWith('UP')).map((s) => s.server);
    if (up.length !== 1 || (v.leader && up[0] !== v.leader)) out.push({ what: `HAProxy on ${h.host} routes writes to ${up.join(', ') || 'no server'}${v.leader ? `, the leader is ${v.leader}` : ''}`, remedy: 'Wait one check interval; if it stays, check Patroni’s /primary on each member.' });
  }
  const drift = v.settings?.rows.filter((r) => !r.ok) ?? [];
  if (drift.length) out.push({ what: `PostgreSQL runs ${drift.map((r) => `${r.name} ${r.value}, not ${r.want}`).join('; ')}`, remedy: 'Re-run the last sprint (`dpgc sprint 3` once Patroni runs, else `dpgc sprint 0`): it applies dpgc’s values and restarts where one needs it.' });
  if (v.certificates.expiring.length)
    out.push({ what: `certificates ending within 30 days: ${v.certificates.expiring.join('; ')}`, remedy: 'Run the sprint that issued them (`dpgc sprint 4` for pgBackRest’s, `dpgc sprint 5` for PostgreSQL’s): it re-issues them.' });
  for (const p of v.pgbouncer) if (p.error) out.push({ what: `PgBouncer on ${p.host}: ${p.error}`, remedy: `Run \`dpgc sprint 1\` to start PgBouncer on ${p.host}.` });
  return out;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => pad(c, widths[i]!)).join('  ').trimEnd());
}

export function formatStatus(v: ClusterView): string {
  const lines: string[] = [chalk.bold(`Cluster ${v.scope}`) + chalk.dim(`  ${v.at}`), ''];
  lines.push(
    ...table([
      ['MEMBER', 'ADDRESS', 'ROLE', 'STATE', 'TL', 'LAG BYTES', 'LAG S', 'SYNC'],
      ...v.members.map((m) => [
        m.name,
        m.address,
        m.role,
        m.name === v.leader ? m.state : `${m.state}${m.replication ? `/${m.replication}` : ''}`,
        m.timeline === undefined ? '-' : String(m.timeline),
        m.lagBytes === undefined ? '-' : String(m.lagBytes),
        m.lagSeconds === undefined ? '-' : m.lagSeconds.toFixed(3),
        m.syncState ?? (m.name === v.leader ? '' : '-'),
      ]),
    ]),
  );
  lines.push('', `etcd: ${v.etcd.endpoints.filter((e) => e.health).length}/${v.etcd.endpoints.length} healthy, leader ${v.etcd.leader ?? 'unknown'}`);
  for (const e of v.etcd.endpoints) lines.push(`  ${e.endpoint}  ${e.health ? 'healthy' : `UNHEALTHY${e.error ? ` (${e.error})` : ''}`}${e.tookMs === undefined ? '' : `  ${e.tookMs.toFixed(1)} ms`}`);
  for (const h of v.haproxy) {
    lines.push('', `HAProxy on ${h.host}${h.error ? `: ${h.error}` : ''}`);
    if (h.servers.length) lines.push(...table([['BACKEND', 'SERVER', 'STATUS', 'CHECK', 'SESSIONS'], ...h.servers.map((s) => [s.backend, s.server, s.status, s.checkStatus, String(s.currentSessions)])]).map((l) => `  ${l}`));
  }
  for (const p of v.pgbouncer) {
    lines.push('', `PgBouncer on ${p.host}${p.error ? `: ${p.error}` : ''}`);
    if (p.pools.length) {
      const cols = ['database', 'user', 'cl_active', 'cl_waiting', 'sv_active', 'sv_idle', 'maxwait'];
      lines.push(...table([cols.map((c) => c.toUpperCase()), ...p.pools.map((r) => cols.map((c) => cell(r[c])))]).map((l) => `  ${l}`));
    }
  }
  if (v.settings) {
    const st = v.settings;
    lines.push('', `PostgreSQL settings${st.host ? ` on ${st.host}` : ''}: profile ${st.profile}${st.basis ? `, ${st.basis}` : ''}${st.error ? `: ${st.error}` : ''}`);
    if (st.rows.length) {
      lines.push(
        ...table([
          ['SETTING', 'IN FORCE', 'SOURCE', 'HOW'],
          ...st.rows.map((r) => [r.name, r.ok ? r.value : `${r.value} (dpgc: ${r.want}${r.pendingRestart ? ', pending restart' : ''})`, r.source, r.why]),
          [st.efSearch.guc, `${st.efSearch.value} per database`, st.efSearch.source, 'ALTER DATABASE … SET (postgres.hnsw_ef_search)'],
        ]).map((l) => `  ${l}`),
      );
    }
  }
  const c = v.certificates;
  const end = c.nearest ? `, the first to end: ${c.nearest.file} on ${c.nearest.where}, ${c.nearest.notAfter?.slice(0, 10) ?? 'unreadable'}` : '';
  lines.push('', c.error ? `Certificates: not read (${c.error})` : c.count ? `Certificates: ${c.count}${end}` : 'Certificates: none yet (sprint 4 issues the first)');
  const problems = viewProblems(v);
  lines.push('', problems.length ? chalk.red(`${problems.length} problem(s):`) : chalk.green('No problems found.'));
  for (const p of problems) lines.push(`  ${chalk.red('✖')} ${p.what}`, chalk.dim(`    → ${p.remedy}`));
  return lines.join('\n');
}

/** A PgBouncer console value as a table cell (numbers and text; anything else is shown as JSON). */
function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}
