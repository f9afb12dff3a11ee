/**
 * Structured JSON logs (pino). Requests are logged from an explicit allow-list of fields, and
 * anything named like a credential is redacted besides, so a token cannot reach the log.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const REDACTED_PATHS = [
  'authorization',
  'token',
  'idToken',
  'password',
  '*.authorization',
  '*.token',
  '*.idToken',
  '*.password',
  'req.headers.authorization',
  'headers.authorization',
];

export function createLogger(
  destination?: DestinationStream,
  level = process.env.SLUICE_LOG_LEVEL ?? 'info',
): Logger {
  const options = {
    level,
    base: { service: 'sluice' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
