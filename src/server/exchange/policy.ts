/**
 * The policy: which slices a verified CI token may read, and the one slice it may write.
 * A rule matches when every claim it lists matches (a string, a `*` glob, or a list of them);
 * `${claim}` templates in slice names are filled from the token's claims.
 */
import type { JWTPayload } from 'jose';
import type { IssuerConfig, Rule, SliceConfig } from '../config/config-schema.js';
import { pullRequestSlice } from '../slices/pull-request-slices.js';
import { ExchangeError } from './exchange-error.js';
import { claimString } from './identity.js';
import type { OwnerRequirement } from './cache-token.js';
import {
  fillTemplate,
  globMatches,
  isSliceName,
  isTemplate,
  normalizeSliceName,
  templateClaims,
  type TemplateResult,
} from '../slices/slice-names.js';

/**
 * A pull-request job's own slice, `<slice>/pr-<number>`, for a slice with `pull_requests` whose
 * read rules the job matched: only on `pull_request` (GitHub gives fork pull requests no ID token;
 * `pull_request_target` runs for forks with one, so it never qualifies).
 */
function pullRequestWriteSlice(slices: SliceConfig[], read: Set<string>, claims: JWTPayload): string | null {
  const number = /^refs\/pull\/(\d+)\/(?:merge|head)$/.exec(claimString(claims.ref) ?? '')?.[1];
  if (claimString(claims.event_name) !== 'pull_request' || number === undefined) return null;
  const slice = slices.find((candidate) => candidate.pullRequests && read.has(candidate.name));
  return slice ? pullRequestSlice(slice.name, number) : null;
}

/** Events whose workflows run trusted code of the repository: never pull_request(_target). */
export const DEFAULT_WRITE_EVENTS = ['push', 'schedule', 'workflow_dispatch', 'merge_group', 'release'];

/**
 * With no `slices` configured: one slice per repository, written by its own workflows on trusted
 * events, read by every repository of the same owner. The first issuer's slices are named
 * `owner/repo`; every other issuer's get its name in front (`forgejo/owner/repo`), so no issuer
 * can take a name first that another's repository needs.
 */
export function defaultSlices(issuers: IssuerConfig[]): SliceConfig[] {
  return issuers.flatMap((issuer, index): SliceConfig[] => {
    const prefix = index === 0 ? '' : `${issuer.name}/`;
    return [
      {
        name: `${prefix}\${repository}`,
        public: false,
        read: [],
        write: [{ issuer: issuer.name, claims: { event_name: DEFAULT_WRITE_EVENTS } }],
      },
      {
        name: `${prefix}\${repository_owner}/*`,
        public: false,
        read: [{ issuer: issuer.name, claims: {} }],
        write: [],
      },
    ];
  });
}

export interface PolicyDecision {
  /** Slice names and patterns the token may read (the write slice included), in the policy's order. */
  read: string[];
  /** Per entry of `read`: the binding a template grant needs (issuer, ids); null for configured names. */
  readOwners: (OwnerRequirement | null)[];
  write: string | null;
  /**
   * The write slice's name came from a template (`${repository}`): the server binds such a slice to
   * the first repository that writes it, so a re-registered name cannot write into it. A slice named
   * in the config is governed by its write rules alone, and may be shared by several repositories.
   */
  bindWrite: boolean;
}

export interface Policy {
  /** Throws ExchangeError (forbidden) naming the claims that failed when nothing is granted. */
  evaluate(issuerName: string, claims: JWTPayload): PolicyDecision;
  publicSlices(): string[];
}

/** Why `rule` does not match, one entry per failing claim; empty when it matches. */
function ruleFailures(rule: Rule, issuerName: string, claims: JWTPayload): string[] {
  if (rule.issuer !== undefined && rule.issuer !== issuerName)
    return [`issuer is '${issuerName}', needs '${rule.issuer}'`];
  const failures: string[] = [];
  for (const [claim, globs] of Object.entries(rule.claims)) {
    const value = claimString(claims[claim]);
    if (value === undefined) {
      failures.push(`${claim} is missing`);
    } else if (!globs.some((glob) => globMatches(glob, value))) {
      failures.push(
        `${claim} is ${JSON.stringify(value.slice(0, 200))}, needs ${globs.map((glob) => JSON.stringify(glob)).join(' or ')}`,
      );
    }
  }
  return failures;
}

/** Whether one of `rules` matches; otherwise what failed, per rule. */
function matchRules(
  rules: Rule[],
  issuerName: string,
  claims: JWTPayload,
): { matched: boolean; failures: string } {
  const perRule = rules.map((rule) => ruleFailures(rule, issuerName, claims));
  if (perRule.some((failures) => failures.length === 0)) return { matched: true, failures: '' };
  return { matched: false, failures: perRule.map((failures) => failures.join(', ')).join('; or ') };
}

/**
 * What a slice made by `template` must be bound to for this token to read it: the issuer, and the
 * ids behind the names the template uses (when the issuer's tokens carry them).
 */
function ownerRequirement(template: string, issuerName: string, claims: JWTPayload): OwnerRequirement {
  const used = templateClaims(template);
  const repositoryId = claimString(claims.repository_id);
  const repositoryOwnerId = claimString(claims.repository_owner_id);
  return {
    issuer: issuerName,
    ...(used.includes('repository') && repositoryId ? { repositoryId } : {}),
    ...(used.includes('repository_owner') && repositoryOwnerId ? { repositoryOwnerId } : {}),
  };
}

/**
 * Fills a template, refusing a name the config itself lists: configured slices are governed by
 * their own rules, so a new repository called `acme/release` must not reach the slice
 * `acme/release` through `${repository}`.
 */
function sliceName(template: string, claims: JWTPayload, configured: Set<string>): TemplateResult {
  if (!isTemplate(template)) return { ok: true, name: template };
  const filled = fillTemplate(template, claims);
  if (filled.ok && configured.has(filled.name))
    return {
      ok: false,
      problem: `'${filled.name}' is a slice named in the config, which no template can make`,
    };
  return filled;
}

export function createPolicy(slices: SliceConfig[]): Policy {
  const configured = new Set(
    slices
      .filter((slice) => !isTemplate(slice.name) && isSliceName(slice.name))
      .map((slice) => normalizeSliceName(slice.name)),
  );
  return {
    evaluate(issuerName, claims) {
      const read = new Map<string, { name: string; owner: OwnerRequirement | null }>();
      const addRead = (name: string, owner: OwnerRequirement | null) =>
        read.set(`${name} ${JSON.stringify(owner)}`, { name, owner });
      let write: string | null = null;
      let bindWrite = false;
      const refusals: string[] = [];
      for (const slice of slices) {
        const name = sliceName(slice.name, claims, configured);
        const owner = isTemplate(slice.name) ? ownerRequirement(slice.name, issuerName, claims) : null;
        for (const access of ['write', 'read'] as const) {
          const rules = slice[access];
          if (rules.length === 0) continue;
          const { matched, failures } = matchRules(rules, issuerName, claims);
          if (!matched) {
            refusals.push(`slice '${slice.name}' ${access}: ${failures}`);
          } else if (!name.ok) {
            refusals.push(`slice '${slice.name}' ${access}: ${name.problem}`);
          } else {
            // The first matching write slice wins: a token writes exactly one slice.
            if (access === 'write' && write === null) {
              write = name.name;
              bindWrite = isTemplate(slice.name);
            }
            if (access === 'read' || write === name.name) addRead(name.name, owner);
          }
        }
      }
      if (write === null) {
        const readNames = new Set([...read.values()].map((grant) => grant.name));
        write = pullRequestWriteSlice(slices, readNames, claims);
        if (write !== null) addRead(write, null);
      }
      if (read.size === 0 && write === null) {
        throw new ExchangeError(
          'forbidden',
          `no slice is granted to this token: ${refusals.join('; ')}`,
          'policy_denied',
        );
      }
      const grants = [...read.values()];
      return {
        read: grants.map((grant) => grant.name),
        readOwners: grants.map((grant) => grant.owner),
        write,
        bindWrite: write !== null && bindWrite,
      };
    },
    publicSlices() {
      return slices.filter((slice) => slice.public).map((slice) => slice.name);
    },
  };
}
