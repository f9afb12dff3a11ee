/** Checks a parsed YAML document key by key; every problem is a ConfigError naming its file, line and key path. */
import { isMap, isPair, isScalar, type Document, type LineCounter } from 'yaml';
import { ConfigError } from './config-error.js';

export type Path = (string | number)[];

/** Validates the parsed document, turning each problem into a ConfigError that points at its line. */
export class Validator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    private readonly source: string,
  ) {}

  fail(path: Path, problem: string, atKey = false): never {
    const where = path
      .map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`))
      .join('');
    const line = this.lineOf(path, atKey);
    throw new ConfigError(`${this.source}${line ? `:${line}` : ''}: ${where || '(top level)'}: ${problem}`);
  }

  private lineOf(path: Path, atKey: boolean): number | undefined {
    let node: unknown = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (atKey) {
      const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
      const pair = isMap(parent)
        ? parent.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === path.at(-1))
        : undefined;
      node = pair?.key;
    }
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    return range ? this.lines.linePos(range[0]).line : undefined;
  }

  /** Runs a parser that throws ConfigError without a location, and adds the location. */
  parse<T>(path: Path, value: unknown, parser: (value: unknown) => T): T {
    try {
      return parser(value);
    } catch (error) {
      if (error instanceof ConfigError) this.fail(path, error.message);
      throw error;
    }
  }

  object(path: Path, value: unknown, known: readonly string[]): Record<string, unknown> {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      this.fail(path, 'expected a mapping');
    for (const key of Object.keys(value)) {
      if (!known.includes(key))
        this.fail([...path, key], `unknown key (expected one of: ${known.join(', ')})`, true);
    }
    return value as Record<string, unknown>;
  }

  list(path: Path, value: unknown): unknown[] {
    if (!Array.isArray(value)) this.fail(path, 'expected a list');
    return value;
  }

  nonEmptyList(path: Path, value: unknown, what: string): unknown[] {
    const list = this.list(path, value);
    if (list.length === 0) this.fail(path, `must list at least one ${what}`);
    return list;
  }

  string(path: Path, value: unknown): string {
    if (typeof value !== 'string' || value.trim() === '') this.fail(path, 'expected a non-empty string');
    return value;
  }

  boolean(path: Path, value: unknown): boolean {
    if (typeof value !== 'boolean') this.fail(path, 'expected true or false');
    return value;
  }

  url(path: Path, value: unknown, allowHttp: boolean): string {
    const text = this.string(path, value);
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      this.fail(path, `${JSON.stringify(text)} is not a URL`);
    }
    if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) {
      this.fail(
        path,
        `${JSON.stringify(text)} must be https:// (http:// needs allow_insecure_http: true, for loopback tests only)`,
      );
    }
    return text;
  }
}
