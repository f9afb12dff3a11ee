/**
 * The policy: which slices a verified CI token may read, and the one slice it may write.
 * A rule matches when every claim it lists matches (a string, a `*` glob, or a list of them);
 * `${claim}` templates in slice names are filled from the token's claims.
 */
import type { JWTPayload } from 'jose';
import type { IssuerConfig, Rule, SliceConfig } from '../config.js';
import { HttpError } from '../../http/errors.js';
import { claimString } from './identity.js';
import { fillTemplate, globMatches, isTemplate, type TemplateResult } from './slice-names.js';

/**
 * A pull-request job's own slice, `<slice>/pr-<number>`, for a slice with `pull_requests` whose
 * read rules the job matched: only on `pull_request` (GitHub gives fork pull requests no ID token;
 * `pull_request_target` runs for forks with one, so it never qualifies).
 */
function pullRequestWriteSlice(slices: SliceConfig[], read: Set<string>, claims: JWTPayload): string | null {
  const number = /^refs\/pull\/(\d+)\/(?:merge|head)$/.exec(claimString(claims.ref) ?? '')?.[1];
  if (claimString(claims.event_name) !== 'pull_request' || number === undefined) return null;
  const slice = slices.find((candidate) => candidate.pullRequests && read.has(candidate.name));
  return slice ? `${slice.name}/pr-${number}` : null;
}

/** Events whose workflows run trusted code of the repository: never pull_request(_target). */
export const DEFAULT_WRITE_EVENTS = ['push', 'schedule', 'workflow_dispatch', 'merge_group', 'release'];

/**
 * With no `slices` configured: one slice per repository, written by its own workflows on trusted
 * events, read by every repository of the same owner.
 */
export function defaultSlices(issuers: IssuerConfig[]): SliceConfig[] {
  return [
    {
      name: '${repository}',
      public: false,
      read: [],
      write: issuers.map((issuer) => ({ issuer: issuer.name, claims: { event_name: DEFAULT_WRITE_EVENTS } })),
    },
    {
      name: '${repository_owner}/*',
      public: false,
      read: issuers.map((issuer) => ({ issuer: issuer.name, claims: {} })),
      write: [],
    },
  ];
}

export interface PolicyDecision {
  /** Slice names and patterns the token may read (the write slice included). */
  read: string[];
  write: string | null;
  /**
   * The write slice's name came from a template (`${repository}`): the server binds such a slice to
   * the first repository that writes it, so a re-registered name cannot write into it. A slice named
   * in the config is governed by its write rules alone, and may be shared by several repositories.
   */
  bindWrite: boolean;
}

export interface Policy {
  /** Throws HttpError 403 naming the claims that failed when nothing is granted. */
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

export function createPolicy(slices: SliceConfig[]): Policy {
  return {
    evaluate(issuerName, claims) {
      const read = new Set<string>();
      let write: string | null = null;
      let bindWrite = false;
      const refusals: string[] = [];
      for (const slice of slices) {
        const name: TemplateResult = isTemplate(slice.name)
          ? fillTemplate(slice.name, claims)
          : { ok: true, name: slice.name };
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
            if (access === 'read' || write === name.name) read.add(name.name);
          }
        }
      }
      if (write === null) {
        write = pullRequestWriteSlice(slices, read, claims);
        if (write !== null) read.add(write);
      }
      if (read.size === 0 && write === null) {
        throw new HttpError(
          403,
          `no slice is granted to this token: ${refusals.join('; ')}`,
          'policy_denied',
        );
      }
      return { read: [...read], write, bindWrite: write !== null && bindWrite };
    },
    publicSlices() {
      return slices.filter((slice) => slice.public).map((slice) => slice.name);
    },
  };
}
