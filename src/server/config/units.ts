/** Values in the server's config: durations, sizes, counts and listen addresses, each refused with a ConfigError naming the problem. */
import { ListenError, parseHostPort, type HostPort } from '../../contracts/listen.js';
import { ConfigError } from './config-error.js';

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};

/** A whole number with a unit from `units` (a bare number takes `bareUnit`) → the number times the unit, or NaN. */
function numberWithUnit(value: unknown, units: Record<string, number>, bareUnit: string): number {
  const text = typeof value === 'number' ? `${value}${bareUnit}` : String(value).trim();
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const unit = match ? units[(match[2] as string).toLowerCase()] : undefined;
  return match && unit !== undefined ? Number(match[1]) * unit : NaN;
}

/** `30s`, `15m`, `1h`, `30d` (or a number of seconds) → seconds. Throws a `ConfigError` otherwise. */
export function parseDuration(value: unknown): number {
  const seconds = numberWithUnit(value, DURATION_UNITS, 's');
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new ConfigError(`${JSON.stringify(value)} is not a duration such as 30s, 15m, 1h or 30d`);
  }
  return seconds;
}

/** `10GiB`, `512MiB`, `1G`, `4096` (binary units; a number is bytes) → bytes. */
export function parseSize(value: unknown): number {
  const bytes = numberWithUnit(value, SIZE_UNITS, '');
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new ConfigError(`${JSON.stringify(value)} is not a size such as 512MiB or 10GiB`);
  }
  return bytes;
}

/** A whole number of at least `min`. */
export function parseCount(value: unknown, min = 1): number {
  const count = typeof value === 'number' ? value : NaN;
  if (!Number.isSafeInteger(count) || count < min) {
    throw new ConfigError(`${JSON.stringify(value)} is not a whole number of at least ${min}`);
  }
  return count;
}

/** `host:port` or `[ipv6]:port` (the one listen grammar, src/contracts/listen.ts). */
export function parseListen(value: unknown): HostPort {
  try {
    return parseHostPort(value);
  } catch (error) {
    if (error instanceof ListenError) throw new ConfigError(error.message);
    throw error;
  }
}
