import { z } from 'zod';
import { CONTROL_CHAR, closest, expected } from './messages.js';
import type { Path } from './source.js';

/**
 * `alerting:` in the inventory: who hears Prometheus's alerts. Alertmanager
 * runs beside Prometheus on the monitoring host; its receivers, routes and
 * group timings come from here. Secrets (an SMTP password, a webhook's bearer
 * token, a Slack webhook URL, which carries its token) are never in the
 * inventory: each receiver has one secret, `receiver_<name>` in the secrets
 * file (or DPGC_SECRET_RECEIVER_<NAME>), set by the operator.
 */

/** Receiver names become secret names and environment variable names: no dashes, so the mapping is exact. */
export const RECEIVER_NAME = /^[a-z][a-z0-9_]{0,39}$/;
const receiverName = z.string().regex(RECEIVER_NAME, { error: expected('a receiver name of lowercase letters, digits and _, starting with a letter, such as oncall') });

/** The root route's receiver when the inventory names none: it has no integration, so what reaches it reaches nobody. */
export const NOBODY = 'nobody';

/** The secret holding a receiver's credential (see the module comment). */
export const receiverSecretName = (receiver: string): `receiver_${string}` => `receiver_${receiver}`;

const port = z
  .number()
  .int()
  .min(1, { error: expected('a port number from 1 to 65535') })
  .max(65535, { error: expected('a port number from 1 to 65535') });

/** Prometheus's duration syntax (`30s`, `1m30s`, `4h`), as Alertmanager reads it. */
const duration = z
  .string()
  .regex(/^(\d+(ms|s|m|h|d|w|y))+$/, { error: expected('a duration such as 30s, 5m or 4h') })
  .refine((v) => !/^(0+(ms|s|m|h|d|w|y))+$/.test(v), { error: expected('a duration above zero') });

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Alertmanager's matcher syntax: `name op value`, the value plain or double-quoted. */
const MATCHER = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^\s"{},!=~]*)$/;

/** Why `s` is not an Alertmanager matcher, or undefined. */
export function matcherProblem(s: string): string | undefined {
  const got = `expected a matcher such as severity="critical" or alertname=~"Postgres.*", got ${JSON.stringify(s)}`;
  if (CONTROL_CHAR.test(s)) return `${got}: it contains a control character`;
  const m = MATCHER.exec(s.trim());
  if (!m) return `${got}: write a label name, one of = != =~ !~, and a value (quote it when it holds spaces or commas)`;
  if (m[2] === '=~' || m[2] === '!~') {
    const raw = m[3]!.startsWith('"') ? (JSON.parse(m[3]!) as string) : m[3]!;
    try {
      new RegExp(`^(?:${raw})$`);
    } catch (e) {
      return `${got}: the regular expression does not compile (${(e as Error).message})`;
    }
  }
  return undefined;
}

const matcher = z.string().superRefine((v, ctx) => {
  const p = matcherProblem(v);
  if (p) ctx.addIssue({ code: 'custom', message: p, input: v });
});

const oneLine = (what: string) => z.string().min(1).max(200).refine((v) => !CONTROL_CHAR.test(v), { error: expected(`${what} on one line, without control characters`) });
const emailAddress = z
  .string()
  .regex(/^[^\s@<>",;:()\\[\]]+@[A-Za-z0-9.-]+$/, { error: expected('one e-mail address such as dba@example.com') })
  .max(254);

export const receiverSchema = z
  .strictObject({
    name: receiverName,
    /** An HTTP endpoint that takes Alertmanager's webhook JSON. */
    webhook: z
      .strictObject({
        url: z.url({ protocol: /^https?$/, error: expected('an http:// or https:// URL such as https://hooks.example.com/alerts') }).meta({ pattern: '^https?://' }),
        /** Send `Authorization: Bearer <secret receiver_<name>>`. */
        token: z.boolean().default(false),
      })
      .optional(),
    /** Mail through an SMTP relay; the password (when `username` is set) is the receiver's secret. */
    email: z
      .strictObject({
        to: emailAddress,
        from: emailAddress,
        /** host:port of the SMTP relay. */
        smarthost: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:\d{1,5}$/, { error: expected('host:port of an SMTP relay, such as smtp.example.com:587') }),
        username: oneLine('a user name').optional(),
        require_tls: z.boolean().default(true),
      })
      .optional(),
    /** Slack, or a Slack-compatible incoming webhook (Mattermost, Rocket.Chat): its URL is the receiver's secret. */
    slack: z
      .strictObject({
        channel: z
          .string()
          .regex(/^[#@]?[A-Za-z0-9._-]{1,80}$/, { error: expected('a channel such as #db-alerts') })
          .optional(),
      })
      .optional(),
    /** Also notify when the alert resolves. */
    send_resolved: z.boolean().default(true),
  })
  .superRefine((r, ctx) => {
    const kinds = (['webhook', 'email', 'slack'] as const).filter((k) => r[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        input: r,
        message: kinds.length
          ? `receiver ${r.name} has ${kinds.join(' and ')}; give each receiver exactly one (two receivers, and a route with continue: true, notify both)`
          : `receiver ${r.name} has no webhook, email or slack: give it exactly one, or remove it`,
      });
    }
  });
export type Receiver = z.output<typeof receiverSchema>;

export const alertingSchema = z
  .strictObject({
    /**
     * The receiver of every alert that no route below claims. Without it, such alerts reach
     * nobody, and the sprint 1 criterion s1.alertmanager.routes names the rules they come from.
     */
    receiver: receiverName.optional(),
    receivers: z.array(receiverSchema).default([]),
    /** Tried in order; the first whose matchers all match takes the alert (and, with continue: true, the next ones too). */
    routes: z
      .array(
        z.strictObject({
          receiver: receiverName,
          matchers: z.array(matcher).min(1, 'give at least one matcher, such as severity="critical"'),
          continue: z.boolean().default(false),
        }),
      )
      .default([]),
    /** Alerts with the same values of these labels go out in one notification. */
    group_by: z.array(z.string().regex(LABEL_NAME, { error: expected('a label name such as alertname') })).default(['alertname', 'cluster']),
    /** How long a new group waits for more alerts before its first notification. */
    group_wait: duration.default('30s'),
    /** How long before a group that changed is notified again. */
    group_interval: duration.default('5m'),
    /** How often a group that still fires is notified again. */
    repeat_interval: duration.default('4h'),
    /**
     * Lab only: dpgc runs a small webhook receiver on the monitoring host on this port that appends
     * every notification it gets to a file (`<root>/var/lib/dpgc/lab-alerts/notifications.jsonl`).
     */
    lab_receiver: z.strictObject({ port }).optional(),
  })
  .prefault({});
export type Alerting = z.output<typeof alertingSchema>;

export interface AlertingProblem {
  paths: Path[];
  at?: 'key' | 'value';
  message: string;
}

/**
 * Rules no single field can express. `monitoringPorts` are the ports the
 * monitoring hosts already use (for the lab receiver's port).
 */
export function alertingRules(inv: { lab: boolean; alerting: Alerting }, monitoringPorts: Map<number, string>): AlertingProblem[] {
  const a = inv.alerting;
  const out: AlertingProblem[] = [];
  const names = new Map<string, number>();
  a.receivers.forEach((r, i) => {
    if (r.name === NOBODY) {
      out.push({ paths: [['alerting', 'receivers', i, 'name']], message: 'the receiver name "nobody" is dpgc\'s own (where alerts no route claims go when alerting.receiver is not set); choose another name' });
    }
    const first = names.get(r.name);
    if (first !== undefined) out.push({ paths: [['alerting', 'receivers', i, 'name']], message: `receiver name "${r.name}" is already used by alerting.receivers[${first}]; every receiver needs its own name` });
    else names.set(r.name, i);
  });
  const known = [...names.keys()];
  const unknown = (name: string) => {
    const near = closest(name, known);
    return `no receiver is named "${name}"${near ? `; did you mean "${near}"?` : ''} (${known.length ? `alerting.receivers has ${known.join(', ')}` : 'alerting.receivers is empty'})`;
  };
  if (a.receiver !== undefined && !names.has(a.receiver)) out.push({ paths: [['alerting', 'receiver']], message: unknown(a.receiver) });
  a.routes.forEach((r, i) => {
    if (!names.has(r.receiver)) out.push({ paths: [['alerting', 'routes', i, 'receiver']], message: unknown(r.receiver) });
  });
  if (a.receiver === undefined && !a.routes.length && a.receivers.length) {
    out.push({
      paths: [['alerting', 'receivers']],
      at: 'key',
      message: `no alert would reach ${known.join(' or ')}: set alerting.receiver (the receiver of every alert no route claims), or add alerting.routes`,
    });
  }
  if (a.lab_receiver) {
    if (!inv.lab) {
      out.push({
        paths: [['alerting', 'lab_receiver']],
        at: 'key',
        message: 'alerting.lab_receiver is for the lab only (an unauthenticated listener that writes what it gets to a file); on real hosts, point a webhook receiver at your own endpoint',
      });
    }
    const taken = monitoringPorts.get(a.lab_receiver.port);
    if (taken) out.push({ paths: [['alerting', 'lab_receiver', 'port']], message: `port ${a.lab_receiver.port} is already used by ${taken} on the monitoring host; give the lab receiver another port` });
  }
  return out;
}
