/**
 * JSON-lines logging (pino) with secret redaction at the last moment: every serialized line is
 * scrubbed of the tokens registered so far, whatever field or error message they hid in.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export class Secrets {
  private readonly values = new Set<string>();

  add(secret: string | null | undefined): void {
    // Very short values would redact ordinary words; real tokens are long.
    if (secret && secret.length >= 8) this.values.add(secret);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.values) {
      out = out.replaceAll(secret, '[REDACTED]');
      const escaped = JSON.stringify(secret).slice(1, -1);
      if (escaped !== secret) out = out.replaceAll(escaped, '[REDACTED]');
    }
    return out;
  }
}

export function createLogger(secrets: Secrets, destination?: DestinationStream): Logger {
  return pino(
    {
      base: { component: 'sluice-proxy' },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: { streamWrite: (line) => secrets.redact(line) },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
