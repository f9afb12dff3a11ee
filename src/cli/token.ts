/**
 * `sluice token create --read PATTERN [--read …] [--ttl 30d] [--name NAME] [--data DIR] [--config FILE]`:
 * prints one read-only cache token, signed with the server token key in the data directory.
 */
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { applyCliOverrides, ConfigError, loadConfig, parseDuration } from '../server/config.js';
import { createExchange, loadOrCreateTokenKey, parseTokenKey } from '../server/exchange/index.js';
import { tokenKeyFileOf } from '../server/keys.js';
import { readFile } from 'node:fs/promises';

export const TOKEN_USAGE =
  "usage: sluice token create --read 'owner/*' [--read …] [--ttl 30d] [--name NAME] [--data DIR] [--config FILE]\n";

export const DEFAULT_READ_TOKEN_TTL = '30d';

export interface CliOutput {
  stdout: Writable;
  stderr: Writable;
}

/** Runs `sluice token …` (argv after `token`); returns the exit code. */
export async function runToken(argv: string[], io: CliOutput = process): Promise<number> {
  const [subcommand, ...rest] = argv;
  if (subcommand !== 'create') {
    io.stderr.write(
      subcommand === undefined
        ? TOKEN_USAGE
        : `sluice token: unknown subcommand '${subcommand}'\n${TOKEN_USAGE}`,
    );
    return 2;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        read: { type: 'string', multiple: true },
        ttl: { type: 'string', default: DEFAULT_READ_TOKEN_TTL },
        name: { type: 'string', default: 'read-token' },
        data: { type: 'string' },
        config: { type: 'string' },
      },
      allowPositionals: false,
    }));
  } catch (error) {
    io.stderr.write(`sluice token create: ${(error as Error).message}\n${TOKEN_USAGE}`);
    return 2;
  }
  const read = (values.read ?? [])
    .flatMap((item) => item.split(','))
    .map((item) => item.trim())
    .filter(Boolean);
  if (read.length === 0) {
    io.stderr.write(
      `sluice token create: --read is required (a slice name or pattern such as 'acme/*')\n${TOKEN_USAGE}`,
    );
    return 2;
  }
  try {
    const ttlSeconds = parseTtl(values.ttl);
    const config = applyCliOverrides(await loadConfig(values.config), { data: values.data });
    const keyPath = tokenKeyFileOf(config);
    // A key file named in the config is shared by replicas: used as it is, never created here.
    const { key, created } = config.keys.tokenKeyFile
      ? { key: parseTokenKey((await readFile(keyPath, 'utf8')).trim(), keyPath), created: false }
      : await loadOrCreateTokenKey(keyPath);
    if (created)
      io.stderr.write(
        `sluice: created a new token key at ${keyPath}: tokens verify only on a server using this data directory\n`,
      );
    const { token, expiresAt } = await createExchange(config, key).createReadToken({
      read,
      ttlSeconds,
      name: values.name,
    });
    io.stderr.write(
      `read token '${values.name}' for ${read.join(', ')}, expires ${expiresAt.toISOString()}\n`,
    );
    io.stdout.write(`${token}\n`);
    return 0;
  } catch (error) {
    io.stderr.write(`sluice token create: ${(error as Error).message}\n`);
    return 1;
  }
}

function parseTtl(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`--ttl: ${error.message}`);
    throw error;
  }
}
