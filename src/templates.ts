import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import { CONTROL_CHAR } from './config/messages.js';
import { ConfigError } from './errors.js';

/**
 * Every file dpgc puts on a host is a template under templates/. Rendering
 * is a pure function of the template and its data; writing the result to a
 * host is a task.
 */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('dpgc package root not found');
    d = up;
  }
  return d;
}

export const TEMPLATES_DIR = join(packageRoot(), 'templates');

// autoEscape off: these are config files, not HTML. Eta's autoTrim would also eat the newline after every
// `<%= value %>`; instead a line holding only a control tag (`<% … %>`) is dropped whole, newline included.
const controlLine = /^[ \t]*(<%(?![=~])(?:(?!%>)[\s\S])*%>)[ \t]*\r?\n/gm;
const eta = new Eta({
  views: TEMPLATES_DIR,
  autoEscape: false,
  autoTrim: false,
  cache: true,
  plugins: [{ processTemplate: (s: string) => s.replace(controlLine, '$1') }],
});

/**
 * Escaping by the target format's own rules, for templates (`it.q.sh(v)`).
 * The schema already keeps paths and names to a plain alphabet; this is the
 * second line: a value a renderer cannot hold safely never reaches a host.
 */
export const q = {
  /** A POSIX sh word in single quotes, ' written as '\'' (systemd's EnvironmentFile reads it the same way). */
  sh: (v: string | number): string => `'${String(v).replace(/'/g, "'\\''")}'`,
  /**
   * A YAML double-quoted scalar. JSON's string syntax is YAML's (1.1 for PyYAML, 1.2 for Go), except that
   * YAML also wants DEL, C1 controls, line separators and the BOM escaped: they are line breaks or
   * non-printable there.
   */
  yaml: (v: string | number | boolean): string =>
    JSON.stringify(v).replace(/[\u007f-\u009f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
  /** A postgresql.conf string: single quotes doubled, backslashes doubled (its parser reads \\ as one). */
  pgconf: (v: string): string => {
    // Its parser ends a quoted value at a newline: a line break could never be part of the value, only start a new setting.
    if (CONTROL_CHAR.test(v)) throw new ConfigError(`${JSON.stringify(v)} cannot be written into postgresql.conf: it contains a newline or another control character`);
    return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  },
  /** One systemd unit-file word: double-quoted, `\\` and `"` escaped, `%` doubled (specifiers are expanded otherwise). */
  systemd: (v: string): string => {
    if (/[\n\0]/.test(v)) throw new ConfigError(`${JSON.stringify(v)} cannot be written into a systemd unit: a setting there cannot hold a newline or NUL`);
    return `"${v.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%')}"`;
  },
  /**
   * A value for a format with no quoting dpgc relies on (pgbouncer.ini, haproxy.cfg, sshd_config,
   * pg_hba.conf): letters, digits and . _ - / : only, else refused.
   */
  word: (v: string | number): string => {
    const s = String(v);
    if (!/^[A-Za-z0-9._/:-]+$/.test(s)) {
      throw new ConfigError(`${JSON.stringify(s)} cannot be written into a config file safely: only letters, digits and . _ - / : are allowed there`, {
        hint: 'Use a plainer value in the inventory (paths, names and addresses).',
      });
    }
    return s;
  },
};

export function render(name: string, data: object): string {
  return eta.render(name, { ...(data as Record<string, unknown>), q });
}

/** Raw template text (SQL migrations, dashboards). */
export function templateText(name: string): string {
  return readFileSync(join(TEMPLATES_DIR, name), 'utf8');
}
