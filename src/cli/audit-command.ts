/** `sluice audit [--slice S] [--since T] [--data DIR] [--json]`: lists accepted writes, oldest first. */
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { AUDIT_COLUMNS, auditRecord, parseSince, readAudit } from '../server/audit.js';
import { applyCliOverrides, applyEnvironment, loadConfig } from '../server/config/server-config.js';

export const AUDIT_USAGE = `usage: sluice audit [--slice S] [--since T] [--data DIR] [--config FILE] [--json]

  --slice S      only writes into slice S
  --since T      only writes at or after T: an ISO date/time, or a duration back from now (24h, 7d)
  --data DIR     data directory (default: the config's, else ./sluice-data)
  --json         one JSON object per line instead of tab-separated columns
`;

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** One column: rows stored before claims were escaped may hold a tab or a newline; they must not make a row. */
function tsvField(value: string | number | null): string {
  if (value === null) return '-';
  return String(value).replace(
    CONTROL_CHARACTERS,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export async function runAudit(
  argv: string[],
  io: { stdout: Writable; stderr: Writable } = process,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        slice: { type: 'string' },
        since: { type: 'string' },
        data: { type: 'string' },
        config: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }));
  } catch (error) {
    io.stderr.write(`sluice audit: ${(error as Error).message}\n${AUDIT_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(AUDIT_USAGE);
    return 0;
  }
  try {
    const config = applyEnvironment(
      applyCliOverrides(await loadConfig(values.config), { data: values.data }),
    );
    const entries = await readAudit(config, {
      ...(values.slice ? { slice: values.slice.toLowerCase() } : {}),
      ...(values.since ? { since: parseSince(values.since) } : {}),
    });
    if (!values.json) io.stdout.write(`${AUDIT_COLUMNS.join('\t')}\n`);
    for (const entry of entries) {
      const record = auditRecord(entry);
      io.stdout.write(
        values.json
          ? `${JSON.stringify(record)}\n`
          : `${AUDIT_COLUMNS.map((column) => tsvField(record[column])).join('\t')}\n`,
      );
    }
    return 0;
  } catch (error) {
    io.stderr.write(`sluice audit: ${(error as Error).message}\n`);
    return 1;
  }
}
