/** The CI identity a cache token carries, for the audit log and for binding slices to repository ids. */
import type { JWTPayload } from 'jose';

export interface CiIdentity {
  /** The configured issuer's name (`github`). */
  issuer: string;
  repository?: string;
  repository_id?: string;
  repository_owner?: string;
  repository_owner_id?: string;
  ref?: string;
  workflow?: string;
  run_id?: string;
  sha?: string;
  event_name?: string;
  environment?: string;
  [claim: string]: string | undefined;
}

/** The claims copied from the ID token: who ran what, where. Kept short so the token stays small. */
export const IDENTITY_CLAIMS = [
  'sub',
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'ref',
  'ref_type',
  'sha',
  'event_name',
  'environment',
  'workflow',
  'workflow_ref',
  'job_workflow_ref',
  'run_id',
  'run_attempt',
  'actor',
  'actor_id',
  'runner_environment',
] as const;

/** A claim as a string, for matching and templates: numbers and booleans are spelled out, others are absent. */
export function claimString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

// Code points that end or shape a line or column in a terminal, a log or tab-separated output.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * `text` with every control character (tab, newline, escape…) spelled `\uXXXX` and every
 * backslash doubled, so a claim printed in `sluice audit`'s columns stays one field of one row.
 */
export function escapeControlCharacters(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(CONTROL_CHARACTERS, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The identity claims, each escaped (claims are the CI's words: a workflow name can hold a tab). */
export function identityFromClaims(issuerName: string, claims: JWTPayload): CiIdentity {
  const identity: CiIdentity = { issuer: issuerName };
  for (const claim of IDENTITY_CLAIMS) {
    const value = claimString(claims[claim]);
    if (value !== undefined) identity[claim] = escapeControlCharacters(value.slice(0, 500));
  }
  return identity;
}
