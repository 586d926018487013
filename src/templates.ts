import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';

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

export function render(name: string, data: object): string {
  return eta.render(name, data as Record<string, unknown>);
}

/** Raw template text (SQL migrations, dashboards). */
export function templateText(name: string): string {
  return readFileSync(join(TEMPLATES_DIR, name), 'utf8');
}
