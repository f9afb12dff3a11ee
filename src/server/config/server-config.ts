/**
 * The server's YAML configuration → a typed, validated `Config`. Every key is optional; a bad key or
 * value is refused with `file:line: key.path: problem`, so a typo never silently weakens the policy.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, defaultConfig, type Config } from './config-schema.js';
import { parseIssuers, parseSlices } from './policy-config.js';
import { parseRateLimits, parseTrustProxy } from './rate-limits.js';
import { parseServerRetention } from './retention-config.js';
import { databaseUrlProblem, parseDatabase, parseKeys, parseStorage } from './storage-config.js';
import { parseDuration, parseListen, parseSize } from './units.js';
import { parseUploadLimit, UPLOAD_LIMIT_KEYS } from './upload-limits.js';
import { Validator } from './yaml-validator.js';

const TOP_LEVEL_KEYS = [
  'listen',
  'data',
  'token_ttl',
  'max_read_token_ttl',
  'max_nar_size',
  'public_url',
  'rate_limits',
  'trust_proxy',
  ...(Object.keys(UPLOAD_LIMIT_KEYS) as (keyof typeof UPLOAD_LIMIT_KEYS)[]),
  'issuers',
  'slices',
  'storage',
  'database',
  'keys',
  'retention',
  'gc_interval',
  'gc_grace',
] as const;
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
  if (raw.max_read_token_ttl !== undefined)
    config.maxReadTokenTtlSeconds = v.parse(['max_read_token_ttl'], raw.max_read_token_ttl, parseDuration);
  if (raw.max_nar_size !== undefined)
    config.maxNarSize = v.parse(['max_nar_size'], raw.max_nar_size, parseSize);
  for (const [key, { field, kind }] of Object.entries(UPLOAD_LIMIT_KEYS)) {
    if (raw[key] !== undefined)
      config.uploads[field] = v.parse([key], raw[key], (value) => parseUploadLimit(kind, value));
  }
  if (raw.public_url !== undefined)
    config.publicUrl = v.url(['public_url'], raw.public_url, true).replace(/\/+$/, '');
  if (raw.rate_limits !== undefined)
    config.rateLimits = parseRateLimits(v, raw.rate_limits, config.rateLimits);
  if (raw.trust_proxy !== undefined) config.trustProxy = parseTrustProxy(v, raw.trust_proxy);
  if (raw.issuers !== undefined) config.issuers = parseIssuers(v, raw.issuers);
  if (raw.slices !== undefined) config.slices = parseSlices(v, raw.slices, config.issuers);
  if (raw.storage !== undefined) config.blobs = parseStorage(v, raw.storage, parseSize, parseDuration);
  if (raw.database !== undefined) config.database = parseDatabase(v, raw.database);
  if (raw.keys !== undefined) config.keys = parseKeys(v, raw.keys);
  const parsers = { duration: parseDuration, size: parseSize };
  return { ...config, ...parseServerRetention(raw, parsers, (keys, problem) => v.fail(keys, problem)) };
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

/** `SLUICE_DATABASE_URL` wins over the file's `database`, so the password need not be in the file. */
export function applyEnvironment(config: Config, env: NodeJS.ProcessEnv = process.env): Config {
  const url = env.SLUICE_DATABASE_URL;
  if (url === undefined || url === '') return config;
  const problem = databaseUrlProblem(url);
  if (problem) throw new ConfigError(`SLUICE_DATABASE_URL: ${problem}`);
  return { ...config, database: { url, source: 'SLUICE_DATABASE_URL' } };
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
