/**
 * NAR links: where Nix may fetch a NAR's bytes without the proxy in between. The daemon asks the
 * server for links to the NARs of the narinfos it answered and redirects Nix's NAR GETs to them.
 * A link is either a path below the server's URL (`nar/<file>?sig=…`: the read right of the
 * daemon's token for that NAR alone, signed by the server, short-lived) or an absolute URL (a
 * presigned bucket URL, when the server keeps NARs in one and presigns downloads).
 */

/** `POST` `{"nars": ["nar/<file hash>.nar[.ext]", ...]}` → `NarLinksResponse`. */
export const NAR_LINKS_PATH = '/_api/v1/nar-links';

/** NAR URLs per request: the closures Nix substitutes at once. */
export const NAR_LINKS_LIMIT = 1000;

/** The query parameter of a signed NAR link. */
export const NAR_LINK_PARAM = 'sig';

/** The answer, as JSON on the wire: a link for every NAR the token may read, nothing for the others. */
export interface NarLinksResponse {
  links: Record<string, string>;
  /**
   * Seconds from the answer: every link of it works that long, and not longer. Relative, so that
   * a client whose clock is off still knows.
   */
  expires_in: number;
}

/** The answer as the daemon uses it, or undefined when the body is not one. */
export function parseNarLinksResponse(
  text: string,
): { links: Map<string, string>; expiresInSeconds: number } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const { links, expires_in: expiresIn } = (json ?? {}) as Partial<NarLinksResponse>;
  if (typeof links !== 'object' || links === null || Array.isArray(links)) return undefined;
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn)) return undefined;
  const entries = Object.entries(links).filter(
    (entry): entry is [string, string] => typeof entry[1] === 'string',
  );
  return { links: new Map(entries), expiresInSeconds: expiresIn };
}
