/**
 * `sluice token create | list | revoke`: read-only cache tokens for people and machines, signed with
 * the server token key in the data directory and recorded in its database, where every replica
 * checks them (so a revoked token stops working everywhere).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { ConfigError, type Config } from '../server/config/config-schema.js';
import { applyCliOverrides, applyEnvironment, loadConfig } from '../server/config/server-config.js';
import { parseDuration } from '../server/config/units.js';
import { dataPaths } from '../server/data-dir.js';
import { createExchange, loadOrCreateTokenKey, parseTokenKey } from '../server/exchange/index.js';
import { tokenKeyFileOf } from '../server/keys.js';
import { readFile } from 'node:fs/promises';
import type { MetadataStore, ReadTokenRecord } from '../server/storage/metadata-store.js';
import { SqliteMetadataStore } from '../server/storage/sqlite-metadata-store.js';

export const TOKEN_USAGE = `usage: sluice token create --read 'owner/*' [--read …] [--ttl 30d] [--name NAME] [--data DIR] [--config FILE]
       sluice token list [--all] [--json] [--data DIR] [--config FILE]
       sluice token revoke ID [--data DIR] [--config FILE]

  create   print a new read-only token (its lifetime at most the config's max_read_token_ttl)
  list     tokens still valid: id, name, patterns, created, expires, last used (--all: also
           revoked and expired ones)
  revoke   refuse the token with this id from now on, on every server sharing the database
`;

export const DEFAULT_READ_TOKEN_TTL = '30d';

export interface CliOutput {
  stdout: Writable;
  stderr: Writable;
}

const COMMON_OPTIONS = { data: { type: 'string' }, config: { type: 'string' } } as const;

/** Runs `sluice token …` (argv after `token`); returns the exit code. */
export async function runToken(argv: string[], io: CliOutput = process): Promise<number> {
  const [subcommand, ...rest] = argv;
  const run = subcommand === undefined ? undefined : SUBCOMMANDS[subcommand];
  if (!run) {
    io.stderr.write(
      subcommand === undefined
        ? TOKEN_USAGE
        : `sluice token: unknown subcommand '${subcommand}'\n${TOKEN_USAGE}`,
    );
    return 2;
  }
  try {
    return await run(rest, io);
  } catch (error) {
    const usage = (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? TOKEN_USAGE : '';
    io.stderr.write(`sluice token ${subcommand}: ${(error as Error).message}\n${usage}`);
    return usage ? 2 : 1;
  }
}

const SUBCOMMANDS: Record<string, (argv: string[], io: CliOutput) => Promise<number>> = {
  create: createToken,
  list: listTokens,
  revoke: revokeToken,
};

async function configFor(values: { data?: string; config?: string }): Promise<Config> {
  return applyEnvironment(applyCliOverrides(await loadConfig(values.config), { data: values.data }));
}

/** The data directory's database; `mustExist` for commands that only read or change records. */
async function withStore<T>(config: Config, mustExist: boolean, use: (store: MetadataStore) => Promise<T>) {
  let store: MetadataStore;
  if (config.database) {
    // The replicas' PostgreSQL (`database`, SLUICE_DATABASE_URL), loaded only when configured.
    const { PgMetadataStore } = await import('../server/storage/pg-metadata-store.js');
    store = await PgMetadataStore.open(config.database.url);
  } else {
    const { database } = dataPaths(config.data);
    if (mustExist && !existsSync(database))
      throw new Error(`no Sluice database at ${database} (is --data right?)`);
    store = new SqliteMetadataStore(database);
  }
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

async function createToken(argv: string[], io: CliOutput): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      read: { type: 'string', multiple: true },
      ttl: { type: 'string', default: DEFAULT_READ_TOKEN_TTL },
      name: { type: 'string', default: 'read-token' },
      ...COMMON_OPTIONS,
    },
    allowPositionals: false,
  });
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
  const ttlSeconds = parseTtl(values.ttl);
  const config = await configFor(values);
  const keyPath = tokenKeyFileOf(config);
  // A key file named in the config is shared by replicas: used as it is, never created here.
  const { key, created } = config.keys.tokenKeyFile
    ? { key: parseTokenKey((await readFile(keyPath, 'utf8')).trim(), keyPath), created: false }
    : await loadOrCreateTokenKey(keyPath);
  if (created)
    io.stderr.write(
      `sluice: created a new token key at ${keyPath}: tokens verify only on a server using this data directory\n`,
    );
  const { token, expiresAt, id } = await withStore(config, false, (store) =>
    createExchange(config, key, { store }).createReadToken({ read, ttlSeconds, name: values.name }),
  );
  io.stderr.write(
    `read token '${values.name}' (id ${id}) for ${read.join(', ')}, expires ${expiresAt.toISOString()}\n`,
  );
  io.stdout.write(`${token}\n`);
  return 0;
}

const LIST_COLUMNS = ['id', 'name', 'read', 'created', 'expires', 'last_used', 'status'] as const;

function listRecord(token: ReadTokenRecord, now: Date): Record<(typeof LIST_COLUMNS)[number], string | null> {
  const iso = (date: Date | null) => (date ? date.toISOString() : null);
  return {
    id: token.id,
    name: token.name,
    read: token.read.join(','),
    created: iso(token.createdAt),
    expires: iso(token.expiresAt),
    last_used: iso(token.lastUsedAt),
    status: token.revokedAt ? 'revoked' : token.expiresAt <= now ? 'expired' : 'valid',
  };
}

async function listTokens(argv: string[], io: CliOutput): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { all: { type: 'boolean' }, json: { type: 'boolean' }, ...COMMON_OPTIONS },
    allowPositionals: false,
  });
  const config = await configFor(values);
  const now = new Date();
  const records = (await withStore(config, true, (store) => store.listReadTokens()))
    .map((token) => listRecord(token, now))
    .filter((record) => values.all || record.status === 'valid');
  if (!values.json) io.stdout.write(`${LIST_COLUMNS.join('\t')}\n`);
  for (const record of records) {
    io.stdout.write(
      values.json
        ? `${JSON.stringify(record)}\n`
        : `${LIST_COLUMNS.map((column) => record[column] ?? '-').join('\t')}\n`,
    );
  }
  return 0;
}

async function revokeToken(argv: string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: COMMON_OPTIONS, allowPositionals: true });
  if (positionals.length !== 1) {
    io.stderr.write(
      `sluice token revoke: give exactly one token id (see 'sluice token list')\n${TOKEN_USAGE}`,
    );
    return 2;
  }
  const id = positionals[0] as string;
  const config = await configFor(values);
  const found = await withStore(config, true, (store) => store.revokeReadToken(id, new Date()));
  if (!found) {
    io.stderr.write(`sluice token revoke: no token with id '${id}' (see 'sluice token list --all')\n`);
    return 1;
  }
  io.stderr.write(`revoked read token ${id}\n`);
  return 0;
}

function parseTtl(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`--ttl: ${error.message}`);
    throw error;
  }
}
