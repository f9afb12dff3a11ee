/**
 * Slice names, slice patterns and `${claim}` templates.
 *
 * A slice name is one or more `/`-separated segments of `[A-Za-z0-9._-]` (never `.` or `..`), at most
 * 200 characters, compared case-insensitively and kept lowercase (GitHub names are case-insensitive,
 * and a slice must not split in two because a name was typed with other capitals). A pattern may
 * also hold `*`, which matches any run of characters, `/` included.
 */

const SEGMENT = /^[a-z0-9._-]+$/;
const PATTERN_SEGMENT = /^[a-z0-9._*-]+$/;
const TEMPLATE_PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const MAX_NAME_LENGTH = 200;

function segmentsAreSafe(text: string, segment: RegExp): boolean {
  if (text.length === 0 || text.length > MAX_NAME_LENGTH) return false;
  return text.split('/').every((part) => segment.test(part) && part !== '.' && part !== '..');
}

/** Lowercases a slice name or pattern: the one spelling used for storage and matching. */
export function normalizeSliceName(name: string): string {
  return name.toLowerCase();
}

export function isSliceName(name: string): boolean {
  return segmentsAreSafe(normalizeSliceName(name), SEGMENT);
}

export function isSlicePattern(pattern: string): boolean {
  return segmentsAreSafe(normalizeSliceName(pattern), PATTERN_SEGMENT);
}

/**
 * Whether `text` matches the glob `pattern`, where `*` matches any run of characters. Linear
 * backtracking (no regular expression), so a pattern with many stars cannot blow up.
 */
export function globMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starAt = -1;
  let resumeAt = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === '*') {
      starAt = p++;
      resumeAt = t;
    } else if (p < pattern.length && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (starAt !== -1) {
      p = starAt + 1;
      t = ++resumeAt;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** Whether the slice `name` is covered by `pattern` (a slice name or a `*` glob), ignoring case. */
export function sliceMatches(pattern: string, name: string): boolean {
  return globMatches(normalizeSliceName(pattern), normalizeSliceName(name));
}

/** The claim names a template such as `${repository_owner}/*` refers to. */
export function templateClaims(template: string): string[] {
  return [...template.matchAll(TEMPLATE_PLACEHOLDER)].map((match) => match[1] as string);
}

export function isTemplate(name: string): boolean {
  return templateClaims(name).length > 0;
}

/** A template with every placeholder replaced by a harmless segment, to validate its shape. */
export function templateShape(template: string): string {
  return template.replace(TEMPLATE_PLACEHOLDER, 'x');
}

/**
 * Whether filling `template` could give `name`: each placeholder read as `*` (a claim value may hold
 * `/`, as `repository` does). A configured slice that a template could make is never made by it.
 */
export function templateCouldMake(template: string, name: string): boolean {
  return globMatches(
    normalizeSliceName(template.replace(TEMPLATE_PLACEHOLDER, '*')),
    normalizeSliceName(name),
  );
}

export type TemplateResult = { ok: true; name: string } | { ok: false; problem: string };

/**
 * Fills `${claim}` placeholders from the token's claims. A claim that is missing, or whose value
 * would not make a plain slice name (`..`, `*`, `%`, spaces…), fails the template: a token must
 * never be able to steer itself into someone else's slice through an odd claim value.
 */
export function fillTemplate(template: string, claims: Record<string, unknown>): TemplateResult {
  const problems: string[] = [];
  const name = template.replace(TEMPLATE_PLACEHOLDER, (_whole, claim: string) => {
    const value = claims[claim];
    if (typeof value !== 'string' || value === '') {
      problems.push(`claim '${claim}' is missing`);
    } else if (!segmentsAreSafe(normalizeSliceName(value), SEGMENT)) {
      problems.push(`claim '${claim}' (${JSON.stringify(value)}) is not usable in a slice name`);
    } else {
      return value;
    }
    return 'x';
  });
  if (problems.length > 0) return { ok: false, problem: problems.join(', ') };
  if (!isSlicePattern(name)) return { ok: false, problem: `'${name}' is not a valid slice name` };
  return { ok: true, name: normalizeSliceName(name) };
}
