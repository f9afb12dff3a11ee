/** The policy's part of the config: `issuers` (whose ID tokens are trusted) and `slices` (who reads and writes what). */
import { DEFAULT_AUDIENCE } from '../../contracts/server-api.js';
import {
  isSliceName,
  isSlicePattern,
  isTemplate,
  normalizeSliceName,
  templateCouldMake,
  templateShape,
} from '../slices/slice-names.js';
import type { IssuerConfig, Rule, SliceConfig } from './config-schema.js';
import { parseSliceRetention } from './retention-config.js';
import { parseDuration, parseSize } from './units.js';
import type { Path, Validator } from './yaml-validator.js';

const ISSUER_KEYS = ['name', 'issuer', 'audience', 'jwks_uri', 'allow_insecure_http'] as const;
const SLICE_KEYS = ['name', 'public', 'read', 'write', 'retention', 'pull_requests'] as const;
const RETENTION_PARSERS = { duration: parseDuration, size: parseSize };
const ISSUER_NAME = /^[a-z0-9][a-z0-9_-]*$/;
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

export function parseIssuers(v: Validator, value: unknown): IssuerConfig[] {
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

export function parseSlices(v: Validator, value: unknown, issuers: IssuerConfig[]): SliceConfig[] {
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
    const sliceRetention = parseSliceRetention(raw, RETENTION_PARSERS, (keys, problem) =>
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
