import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type YAMLError } from 'yaml';

export type Path = (string | number)[];

/** Where a problem is: line and column (1-based), when the file has them. */
export interface Position {
  line?: number;
  column?: number;
}

/**
 * A YAML file parsed with positions, so every problem can name the line and
 * column of the key or value at fault rather than only a field path.
 */
export class YamlSource {
  readonly doc: Document;
  private readonly lines = new LineCounter();

  constructor(readonly text: string) {
    // uniqueKeys: a key given twice is an error, not "the last one wins".
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
  }

  get errors(): readonly YAMLError[] {
    return this.doc.errors;
  }

  pos(offset: number | undefined): Position {
    if (offset === undefined) return {};
    const p = this.lines.linePos(offset);
    return { line: p.line, column: p.col };
  }

  /** Whether the file itself sets `path` (as opposed to a default filling it in). */
  has(path: Path): boolean {
    return this.doc.hasIn(path);
  }

  /** The value at `path` as plain data, or undefined. */
  value(path: Path): unknown {
    const n = this.doc.getIn(path, true);
    return isScalar(n) ? n.value : n && typeof n === 'object' && 'toJSON' in n ? (n as { toJSON(): unknown }).toJSON() : n;
  }

  /**
   * Position of the key (`at: 'key'`) or value at `path`. When the path is
   * not in the file (a missing field, a default), the nearest ancestor that
   * is: that is where the operator has to add or change something.
   */
  at(path: Path, at: 'key' | 'value' = 'value'): Position {
    for (let n = path.length; n >= 0; n--) {
      const offset = this.offset(path.slice(0, n), n === path.length ? at : 'key');
      if (offset !== undefined) return this.pos(offset);
    }
    return {};
  }

  private offset(path: Path, at: 'key' | 'value'): number | undefined {
    if (path.length === 0) return rangeStart(this.doc.contents);
    const last = path[path.length - 1];
    const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
    if (isMap(parent)) {
      const pair = parent.items.find((it) => (isScalar(it.key) ? it.key.value : it.key) === last);
      if (!pair) return undefined;
      return rangeStart(at === 'key' ? pair.key : pair.value ?? pair.key);
    }
    if (isSeq(parent) && typeof last === 'number') return rangeStart(parent.items[last]);
    return undefined;
  }
}

function rangeStart(node: unknown): number | undefined {
  return (node as { range?: [number, number, number] } | null | undefined)?.range?.[0];
}

/** `hosts[1].ssh.port`; a key that is not a plain word is quoted (`postgres.settings["a b"]`), so a newline in it cannot forge a line. */
export function fmtPath(path: Path): string {
  return path.reduce<string>((acc, p) => {
    if (typeof p === 'number') return `${acc}[${p}]`;
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(p)) return `${acc}[${JSON.stringify(p)}]`;
    return acc ? `${acc}.${p}` : p;
  }, '');
}
