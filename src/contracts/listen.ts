/**
 * Listen addresses, one grammar for the server's `listen`/`--listen`, the Action's `listen` input
 * and the daemon's config: `host:port` or `[ipv6]:port`, port 0–65535 (0: any free port).
 */

import { isIP } from 'node:net';

export interface HostPort {
  /** Without brackets: `::1`, not `[::1]`. */
  host: string;
  port: number;
}

/** The hosts the daemon may listen on: it holds the cache token, so never a routable address. */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '::1']);

export class ListenError extends Error {}

/** `host:port` or `[ipv6]:port` → its parts; a ListenError saying the grammar otherwise. */
export function parseHostPort(value: unknown): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(String(value).trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ListenError(`${JSON.stringify(String(value))} is not HOST:PORT`);
  return { host: (match[1] ?? match[2]) as string, port };
}

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host);
}

/** Any loopback address (127.0.0.0/8, ::1, localhost; brackets allowed), where plain http never leaves the machine. */
export function isLoopbackAddress(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** The host as it goes into a URL: IPv6 addresses in brackets (once). */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
