import type { YAMLError, YAMLWarning } from 'yaml';
import type { z } from 'zod';
import type { ConfigIssue } from '../errors.js';
import { closest, describe, noun, typeTip } from './messages.js';
import { fmtPath, type Path, type YamlSource } from './source.js';

/**
 * Turns YAML and schema problems into ConfigIssues: file, line and column of
 * the key or value at fault, the field path, and a message that says what was
 * expected, what was found and what to write instead.
 */

/** Per-parse zod error map: replaces zod's default wording; messages set in the schema win over it. */
export const operatorErrors: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${noun(iss.expected)}, got ${describe(iss.input)}${typeTip(iss.expected, iss.input)}`;
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array') return `list at least ${min} item${min === 1 ? '' : 's'}, got ${Array.isArray(iss.input) ? iss.input.length : 0}`;
      if (iss.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters long`;
      return `expected a number ${iss.inclusive ? `of at least ${min}` : `above ${min}`}, got ${describe(iss.input)}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array') return `list at most ${max} items, got ${Array.isArray(iss.input) ? iss.input.length : '?'}`;
      if (iss.origin === 'string') return `must be at most ${max} characters long`;
      return `expected a number ${iss.inclusive ? `of at most ${max}` : `below ${max}`}, got ${describe(iss.input)}`;
    }
    case 'invalid_value': {
      const values = iss.values.map((v) => String(v));
      const near = typeof iss.input === 'string' ? closest(iss.input, values) : undefined;
      const quoted = typeof iss.input === 'string' && values.includes(iss.input) ? `; write ${iss.input} without quotes` : '';
      return `expected one of ${values.join(', ')}, got ${describe(iss.input)}${near && !quoted ? `; did you mean ${near}?` : quoted}`;
    }
    case 'invalid_format':
      if (iss.format === 'url') return `expected a URL such as http://10.0.0.10:3000, got ${describe(iss.input)}`;
      return `expected text in the format ${iss.format}, got ${describe(iss.input)}`;
    case 'invalid_key':
      // A mapping key that fails its pattern (postgres.settings): say what the key should look like.
      return iss.issues[0]?.message;
    case 'invalid_union':
      return `got ${describe(iss.input)}, which is none of the accepted forms; \`dpgc schema\` shows them`;
    default:
      return undefined;
  }
};

/** Examples shown when a required field is missing. */
const EXAMPLES: Record<string, string> = {
  cluster: 'cluster: main',
  hosts: 'hosts: [{name: db1, address: 10.0.0.11, roles: [postgres, etcd]}, …] (three hosts is the usual minimum)',
  name: 'name: db1',
  address: 'address: 10.0.0.11',
  roles: 'roles: [postgres, etcd]',
};

export function zodIssues(issues: readonly z.core.$ZodIssue[], src: YamlSource, file: string, schema: z.ZodType): ConfigIssue[] {
  return issues.flatMap((i): ConfigIssue[] => {
    const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (i.code === 'unrecognized_keys') {
      const known = keysAt(schema, path) ?? [];
      return i.keys.map((key) => {
        const near = closest(key, known);
        const where = [...path, key];
        return {
          file,
          ...src.at(where, 'key'),
          path: fmtPath(where),
          message: near
            ? `unknown key "${key}"; did you mean "${near}"?`
            : `unknown key "${key}"; remove it or fix the spelling` +
              (known.length ? ` (keys allowed${path.length ? ` under ${fmtPath(path)}` : ' at the top level'}: ${known.join(', ')})` : ''),
        };
      });
    }
    if (i.code === 'invalid_type' && !src.has(path)) {
      const key = path[path.length - 1];
      const example = typeof key === 'string' ? EXAMPLES[key] : undefined;
      return [{ file, ...src.at(path), path: fmtPath(path), message: `required field is missing; add it${example ? `, e.g. \`${example}\`` : ` (expected ${noun(i.expected)})`}` }];
    }
    return [{ file, ...src.at(path, i.code === 'invalid_key' ? 'key' : 'value'), path: fmtPath(path), message: i.message }];
  });
}

const YAML_FIXES: Record<string, string> = {
  TAB_AS_INDENT: 'indent with spaces, not tabs',
  MISSING_CHAR: 'close the quote or bracket that was opened before this point',
  BAD_INDENT: 'check the indentation, and that every [ and { is closed',
  BLOCK_AS_IMPLICIT_KEY: 'put a nested mapping on its own lines, indented under its key (or quote a value that contains ": ")',
  MULTILINE_IMPLICIT_KEY: 'every key needs a colon and a space after it (`key: value`)',
};

export function yamlIssue(e: YAMLError | YAMLWarning, src: YamlSource, file: string): ConfigIssue {
  const where = src.pos(e.pos[0]);
  if (e.code === 'DUPLICATE_KEY') {
    const key = /^[^:\n]*/.exec(src.text.slice(e.pos[0]))?.[0].trim() || 'this key';
    return { file, ...where, path: '', message: `YAML: "${key}" appears twice in the same mapping; keep one of them (the file is not guessed at)` };
  }
  if (e.code === 'TAG_RESOLVE_FAILED') {
    return { file, ...where, path: '', message: `YAML: ${firstLine(e.message)}; remove the tag: the inventory is plain data` };
  }
  const fix = YAML_FIXES[e.code] ?? 'fix the YAML syntax here';
  return { file, ...where, path: '', message: `YAML syntax error: ${firstLine(e.message)}; ${fix}` };
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

interface Def {
  type: string;
  innerType?: Schemaish;
  shape?: Record<string, Schemaish>;
  element?: Schemaish;
}
interface Schemaish {
  _zod: { def: Def };
}

/** The keys an object in the schema allows at `path` (for "did you mean" and the list of allowed keys). */
function keysAt(schema: z.ZodType, path: Path): string[] | undefined {
  let s: Schemaish | undefined = schema;
  const unwrap = () => {
    while (s?._zod.def.innerType) s = s._zod.def.innerType;
  };
  for (const p of path) {
    unwrap();
    const d: Def | undefined = s?._zod.def;
    s = d?.type === 'object' && typeof p === 'string' ? d.shape?.[p] : d?.type === 'array' ? d.element : undefined;
  }
  unwrap();
  return s?._zod.def.type === 'object' ? Object.keys(s._zod.def.shape ?? {}) : undefined;
}
