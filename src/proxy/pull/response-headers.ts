/** The one place that decides which upstream response headers reach Nix. */

/** RFC 9110 §7.6.1 hop-by-hop headers, plus what undici or Node set themselves. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'date',
  'set-cookie',
]);

/** End-to-end headers of an upstream response, minus hop-by-hop ones and any the Connection header names. */
export function forwardableHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || HOP_BY_HOP.has(lower) || named.includes(lower)) continue;
    out[lower] = value;
  }
  return out;
}

/** The headers of a small answer given whole, flat as `writeHead` takes them (no object to walk). */
export function textHeaders(contentType: string, body: string): string[] {
  return ['content-type', contentType, 'content-length', String(Buffer.byteLength(body))];
}
