/**
 * The server's YAML configuration → a typed, validated `Config`. Every key is optional; a bad key or
 * value is refused with `file:line: key.path: problem`, so a typo never silently weakens the policy.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import {
  isSliceName,
  isSlicePattern,
  isTemplate,
  normalizeSliceName,
  templateCouldMake,
  templateShape,
} from './exchange/slice-names.js';
import * as retention from './retention/settings.js';
import { ConfigError, parseDuration, parseSize } from './config-values.js';
import {
  DEFAULT_UPLOAD_LIMITS,
  parseUploadLimit,
  UPLOAD_LIMIT_KEYS,
  type UploadLimits,
} from './upload-limits.js';

export { ConfigError, parseCount, parseDuration, parseSize } from './config-values.js';

export interface Listen {
  host: string;
  port: number;
}

export interface IssuerConfig {
  /** The name rules use to refer to this issuer (`issuer: github`). */
  name: string;
  /** The exact `iss` claim of its tokens. */
  issuer: string;
  /** The `aud` claim its tokens must carry. */
  audience: string;
  /** Where its signing keys are; default: OIDC discovery at `<issuer>/.well-known/openid-configuration`. */
  jwksUri?: string;
  /** Accept `http://` issuer and JWKS URLs: only for tests on loopback. */
  allowInsecureHttp: boolean;
}

/** A rule matches a token when every listed claim matches one of its globs. */
export interface Rule {
  /** The configured issuer's name; absent only when a single issuer is configured. */
  issuer?: string;
  /** Claim name → globs (`*` matches any run of characters); any one of them may match. */
  claims: Record<string, string[]>;
}

export interface SliceConfig {
  /** A slice name, a pattern with `*` (read-only slices), or a template such as `${repository}`. */
  name: string;
  /** Readable by anyone, without a token. */
  public: boolean;
  read: Rule[];
  write: Rule[];
  /** Overrides the server-wide retention for this slice. */
  retention?: retention.RetentionPolicy;
  /** Same-repository pull-request jobs write `<name>/pr-<number>` (docs/retention.md). */
  pullRequests?: retention.PullRequestSettings;
}

export interface Config {
  listen: Listen;
  /** The data directory, as written (relative paths are relative to the current directory). */
  data: string;
  /** Lifetime of the cache tokens issued by the OIDC exchange. */
  tokenTtlSeconds: number;
  /** Largest NAR accepted, in bytes: the upload and the NAR inside it. */
  maxNarSize: number;
  /** Bounds on what one upload may cost: inflation, decoder memory, concurrency, idle bodies. */
  uploads: UploadLimits;
  /** The URL clients should use for the cache, when it differs from the listen address (reverse proxy). */
  publicUrl?: string;
  issuers: IssuerConfig[];
  /** The configured slices; absent means the default policy (one slice per repository). */
  slices?: SliceConfig[];
  /** Server-wide retention (each slice may override it); empty = keep paths forever. */
  retention: retention.RetentionPolicy;
  /** How often the server collects garbage (seconds). */
  gcIntervalSeconds: number;
  /** Nothing read, pushed or uploaded this recently is removed (seconds); also the orphans' age. */
  gcGraceSeconds: number;
}

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
export const DEFAULT_AUDIENCE = 'sluice';
export const DEFAULT_MAX_NAR_SIZE = 10 * 1024 ** 3;

export function defaultConfig(): Config {
  return {
    listen: { host: '127.0.0.1', port: 8080 },
    data: './sluice-data',
    tokenTtlSeconds: 3600,
    maxNarSize: DEFAULT_MAX_NAR_SIZE,
    retention: {},
    gcIntervalSeconds: retention.DEFAULT_GC_INTERVAL_SECONDS,
    gcGraceSeconds: retention.DEFAULT_GC_GRACE_SECONDS,
    uploads: { ...DEFAULT_UPLOAD_LIMITS },
    issuers: [
      { name: 'github', issuer: GITHUB_ISSUER, audience: DEFAULT_AUDIENCE, allowInsecureHttp: false },
    ],
  };
}

/** `host:port` or `[ipv6]:port`. */
export function parseListen(value: unknown): Listen {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(String(value).trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ConfigError(`${JSON.stringify(String(value))} is not HOST:PORT`);
  return { host: (match[1] ?? match[2]) as string, port };
}

type Path = (string | number)[];

/** Validates the parsed document, turning each problem into a ConfigError that points at its line. */
class Validator {
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

const TOP_LEVEL_KEYS = [
  'listen',
  'data',
  'token_ttl',
  'max_nar_size',
  'public_url',
  ...(Object.keys(UPLOAD_LIMIT_KEYS) as (keyof typeof UPLOAD_LIMIT_KEYS)[]),
  'issuers',
  'slices',
  'retention',
  'gc_interval',
  'gc_grace',
] as const;
const ISSUER_KEYS = ['name', 'issuer', 'audience', 'jwks_uri', 'allow_insecure_http'] as const;
const SLICE_KEYS = ['name', 'public', 'read', 'write', 'retention', 'pull_requests'] as const;
const RETENTION_PARSERS = { duration: parseDuration, size: parseSize };
const ISSUER_NAME = /^[a-z0-9][a-z0-9_-]*$/;
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

function parseIssuers(v: Validator, value: unknown): IssuerConfig[] {
  const list = v.nonEmptyList(['issuers'], value, 'issuer (omit the key to trust GitHub Actions)');
  const issuers = list.map((item, i): IssuerConfig => {
    const path = ['issuers', i];
    const raw = v.object(path, item, ISSUER_KEYS);
    const name = v.string([...path, 'name'], raw.name);
    if (!ISSUER_NAME.test(name)) v.fail([...path, 'name'], 'use lowercase letters, digits, - and _');
    const allowInsecureHttp =
      raw.allow_insecure_http === undefined
        ? false
        : v.boolean([...path, 'allow_insecure_http'], raw.allow_insecure_http);
    const issuer = v.url([...path, 'issuer'], raw.issuer, allowInsecureHttp);
    const audience =
      raw.audience === undefined ? DEFAULT_AUDIENCE : v.string([...path, 'audience'], raw.audience);
    const jwksUri =
      raw.jwks_uri === undefined ? undefined : v.url([...path, 'jwks_uri'], raw.jwks_uri, allowInsecureHttp);
    return { name, issuer, audience, allowInsecureHttp, ...(jwksUri ? { jwksUri } : {}) };
  });
  issuers.forEach((issuer, i) => {
    if (issuers.findIndex((other) => other.name === issuer.name) !== i)
      v.fail(['issuers', i, 'name'], `duplicate issuer name '${issuer.name}'`);
    if (issuers.findIndex((other) => other.issuer === issuer.issuer) !== i)
      v.fail(['issuers', i, 'issuer'], `issuer ${issuer.issuer} is listed twice`);
  });
  return issuers;
}

function parseRule(
  v: Validator,
  path: Path,
  value: unknown,
  issuers: IssuerConfig[],
  templated: boolean,
): Rule {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    v.fail(path, 'expected a mapping of claim: value');
  const rule: Rule = { claims: {} };
  for (const [key, raw] of Object.entries(value)) {
    const keyPath = [...path, key];
    if (key === 'issuer') {
      const name = v.string(keyPath, raw);
      if (!issuers.some((issuer) => issuer.name === name)) {
        v.fail(
          keyPath,
          `unknown issuer '${name}' (configured: ${issuers.map((issuer) => issuer.name).join(', ')})`,
        );
      }
      rule.issuer = name;
      continue;
    }
    if (!CLAIM_NAME.test(key)) v.fail(keyPath, 'not a claim name', true);
    const values = Array.isArray(raw) ? raw : [raw];
    if (values.length === 0) v.fail(keyPath, 'an empty list matches nothing');
    rule.claims[key] = values.map((item, i) => {
      const itemPath = Array.isArray(raw) ? [...keyPath, i] : keyPath;
      if (typeof item === 'number' || typeof item === 'boolean') return String(item);
      return v.string(itemPath, item);
    });
  }
  if (rule.issuer === undefined && issuers.length > 1) {
    v.fail(
      path,
      `name the issuer (issuer: ${issuers.map((issuer) => issuer.name).join(' | ')}): several are configured`,
    );
  }
  if (Object.keys(rule.claims).length === 0 && !templated) {
    v.fail(
      path,
      'a rule must test at least one claim besides issuer: without one it matches every workflow of the issuer',
    );
  }
  return rule;
}

function parseSlices(v: Validator, value: unknown, issuers: IssuerConfig[]): SliceConfig[] {
  const list = v.nonEmptyList(['slices'], value, 'slice (omit the key for the default policy)');
  const slices = list.map((item, i): SliceConfig => {
    const path = ['slices', i];
    const raw = v.object(path, item, SLICE_KEYS);
    const name = v.string([...path, 'name'], raw.name);
    const templated = isTemplate(name);
    const shape = templateShape(name);
    if (!isSlicePattern(shape)) {
      v.fail(
        [...path, 'name'],
        `'${name}' is not a slice name: use /-separated segments of letters, digits, . _ - (and * in read-only patterns)`,
      );
    }
    const isPublic = raw.public === undefined ? false : v.boolean([...path, 'public'], raw.public);
    const rules = (key: 'read' | 'write') =>
      raw[key] === undefined
        ? []
        : v
            .list([...path, key], raw[key])
            .map((rule, j) => parseRule(v, [...path, key, j], rule, issuers, templated));
    const read = rules('read');
    const write = rules('write');
    if (write.length > 0 && !isSliceName(shape))
      v.fail([...path, 'name'], `'${name}' is a pattern: a slice with write rules needs a plain name`);
    if (isPublic && templated)
      v.fail(
        [...path, 'public'],
        'a template slice cannot be public: list the public slices by name or pattern',
      );
    if (!isPublic && read.length === 0 && write.length === 0)
      v.fail(path, 'grants nothing: add read or write rules, or public: true');
    if (/(^|\/)pr-\d+$/i.test(name))
      v.fail([...path, 'name'], `'${name}' ends in pr-<number>, which names pull-request slices`);
    const sliceRetention = retention.parseSliceRetention(raw, RETENTION_PARSERS, (keys, problem) =>
      v.fail([...path, ...keys], problem),
    );
    if (sliceRetention.pullRequests && (read.length === 0 || !isSliceName(shape)))
      v.fail([...path, 'pull_requests'], 'needs a plain slice name with read rules (they pick the jobs)');
    const normalized = templated ? name : normalizeSliceName(name);
    return { name: normalized, public: isPublic, read, write, ...sliceRetention };
  });
  slices.forEach((slice, i) => {
    if (slices.findIndex((other) => other.name === slice.name) !== i)
      v.fail(['slices', i, 'name'], `duplicate slice '${slice.name}'`);
  });
  slices.forEach((slice, i) => checkTemplateCollision(v, slices, i));
  return slices;
}

/**
 * Configured names are reserved: a template never makes one (the policy refuses it at exchange),
 * so a configured name without write rules that a writing template could make was only ever
 * written through the template. That silently stops; worse, it was the takeover this prevents.
 */
function checkTemplateCollision(v: Validator, slices: SliceConfig[], i: number): void {
  const slice = slices[i] as SliceConfig;
  if (isTemplate(slice.name) || !isSliceName(slice.name) || slice.write.length > 0) return;
  const template = slices.find(
    (other) => isTemplate(other.name) && other.write.length > 0 && templateCouldMake(other.name, slice.name),
  );
  if (template) {
    v.fail(
      ['slices', i, 'name'],
      `'${slice.name}' could also be made by the template '${template.name}', which never writes a slice named in the config: give '${slice.name}' write rules of its own (repository_id: …) or list it under a name no template makes`,
    );
  }
}

/** Parses and validates YAML config text. `source` names the file in error messages. */
export function parseConfig(text: string, source = 'config'): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const line = yamlError.linePos?.[0].line;
    throw new ConfigError(`${source}${line ? `:${line}` : ''}: ${yamlError.message.split('\n')[0]}`);
  }
  const v = new Validator(doc, lines, source);
  const value: unknown = doc.toJS();
  const config = defaultConfig();
  if (value === null || value === undefined) return config;
  const raw = v.object([], value, TOP_LEVEL_KEYS);
  if (raw.listen !== undefined) config.listen = v.parse(['listen'], raw.listen, parseListen);
  if (raw.data !== undefined) config.data = v.string(['data'], raw.data);
  if (raw.token_ttl !== undefined)
    config.tokenTtlSeconds = v.parse(['token_ttl'], raw.token_ttl, parseDuration);
  if (raw.max_nar_size !== undefined)
    config.maxNarSize = v.parse(['max_nar_size'], raw.max_nar_size, parseSize);
  for (const [key, { field, kind }] of Object.entries(UPLOAD_LIMIT_KEYS)) {
    if (raw[key] !== undefined)
      config.uploads[field] = v.parse([key], raw[key], (value) => parseUploadLimit(kind, value));
  }
  if (raw.public_url !== undefined)
    config.publicUrl = v.url(['public_url'], raw.public_url, true).replace(/\/+$/, '');
  if (raw.issuers !== undefined) config.issuers = parseIssuers(v, raw.issuers);
  if (raw.slices !== undefined) config.slices = parseSlices(v, raw.slices, config.issuers);
  return {
    ...config,
    ...retention.parseServerRetention(raw, RETENTION_PARSERS, (keys, p) => v.fail(keys, p)),
  };
}

/** Reads the config file at `path`; without a path, the defaults. */
export async function loadConfig(path?: string): Promise<Config> {
  if (path === undefined) return defaultConfig();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${path}: cannot read the config file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  return parseConfig(text, path);
}

export interface CliOverrides {
  listen?: string;
  data?: string;
}

/** Command-line flags win over the file. */
export function applyCliOverrides(config: Config, flags: CliOverrides): Config {
  const merged = { ...config };
  if (flags.listen !== undefined) {
    try {
      merged.listen = parseListen(flags.listen);
    } catch (error) {
      throw new ConfigError(`--listen: ${(error as Error).message}`);
    }
  }
  if (flags.data !== undefined) {
    if (flags.data.trim() === '') throw new ConfigError('--data: expected a directory');
    merged.data = flags.data;
  }
  return merged;
}
