/**
 * The real Sluice server on 127.0.0.1:0 with a temp data dir, trusting a local OIDC issuer; token
 * helpers (exchanged CI tokens, read tokens) and a netrc writer so real Nix can authenticate.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import { Hash } from '../../src/nix/hash.js';
import { createCompressor } from '../../src/nix/nar.js';
import { serializeNarInfo, type NarInfo } from '../../src/nix/narinfo.js';
import type { Config } from '../../src/server/config/config-schema.js';
import { parseConfig } from '../../src/server/config/server-config.js';
import { createExchange } from '../../src/server/exchange/index.js';
import { loadServerKeys } from '../../src/server/keys.js';
import type { MetadataStore } from '../../src/server/storage/metadata-store.js';
import { PgMetadataStore } from '../../src/server/storage/pg-metadata-store.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import type { VerifyPool } from '../../src/server/cache/verify-pool.js';
import { dataPaths } from '../../src/server/data-dir.js';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';
import type { UploadLimits } from '../../src/server/config/upload-limits.js';
import { makeNixMachine, nix, type NixMachine } from './nix.js';
import { githubClaims, startOidcIssuer, type Claims, type OidcIssuer } from './oidc-issuer.js';

export interface TestServer extends RunningServer {
  issuer: OidcIssuer;
  config: Config;
  /** Every JSON log line the server wrote. */
  logs: string[];
  /** Issuers configured after `github`, by name (see `TestServerOptions.otherIssuers`). */
  otherIssuers: Record<string, OidcIssuer>;
  /** A cache token from the real exchange, for a GitHub-shaped ID token with these claims (from `issuerName`, default github). */
  ciToken(claims?: Claims, issuerName?: string): Promise<string>;
  /** A read-only token, as `sluice token create --read` makes. */
  readToken(read: string[], ttlSeconds?: number): Promise<string>;
}

export interface TestServerOptions {
  /** Extra YAML (e.g. `slices:`), parsed by the real config parser; issuers are set to the local one. */
  yaml?: string;
  maxNarSize?: number;
  /** Upload limits to set besides the defaults (times in milliseconds, which the file cannot say). */
  uploads?: Partial<UploadLimits>;
  dataDir?: string;
  /** Names of more local issuers to trust after `github` (a second CI provider). */
  otherIssuers?: string[];
  /** Share an issuer between servers (replicas of one cache); closed by its owner, not the server. */
  issuer?: OidcIssuer;
  /** The server's clock for tokens (ms), to step past caches and lifetimes without sleeping. */
  now?: () => number;
  /** The upload verification threads, to watch or stop them (closed with the server). */
  verifiers?: VerifyPool;
  /** Retention's clock (ms): tests move it to age what was pushed and read. */
  clock?: () => number;
  /** Runs just before the collector deletes a claimed NAR file (to force a race). */
  beforeBlobDelete?: (key: string) => Promise<void>;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const issuer = options.issuer ?? (await startOidcIssuer());
  const otherIssuers: Record<string, OidcIssuer> = {};
  for (const name of options.otherIssuers ?? []) otherIssuers[name] = await startOidcIssuer();
  const issuers = [
    issuer.issuerConfig('github'),
    ...Object.entries(otherIssuers).map(([name, other]) => other.issuerConfig(name)),
  ];
  // The YAML is parsed knowing every issuer, so its rules may name them.
  const issuersYaml = `issuers:\n${issuers.map((entry) => `  - { name: ${entry.name}, issuer: '${entry.issuer}', allow_insecure_http: true }\n`).join('')}`;
  const parsed = parseConfig(`${issuersYaml}${options.yaml ?? ''}`, 'test config');
  const config: Config = {
    ...parsed,
    listen: { host: '127.0.0.1', port: 0 },
    data: options.dataDir ?? mkdtempSync(join(tmpdir(), 'sluice-data-')),
    issuers,
    ...(options.maxNarSize ? { maxNarSize: options.maxNarSize } : {}),
    uploads: { ...parsed.uploads, ...options.uploads },
  };
  const logs: string[] = [];
  const server = await startServer(config, {
    logDestination: { write: (line: string) => logs.push(line) },
    ...(options.now ? { exchange: { now: options.now } } : {}),
    ...(options.verifiers ? { verifiers: options.verifiers } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.beforeBlobDelete ? { beforeBlobDelete: options.beforeBlobDelete } : {}),
  });
  const { tokenKey } = await loadServerKeys(config, server.dataDir);
  // Read tokens are recorded in the server's database, as `sluice token create` records them.
  const store: MetadataStore = config.database
    ? await PgMetadataStore.open(config.database.url)
    : new SqliteMetadataStore(dataPaths(server.dataDir).database);
  const exchange = createExchange(config, tokenKey, { store, ...(options.now ? { now: options.now } : {}) });

  return {
    ...server,
    issuer,
    otherIssuers,
    config,
    logs,
    async ciToken(claims = {}, issuerName = 'github') {
      const signer = issuerName === 'github' ? issuer : (otherIssuers[issuerName] as OidcIssuer);
      const idToken = await signer.sign(githubClaims(claims));
      const res = await fetch(`${server.url}/_api/v1/token`, {
        method: 'POST',
        headers: { authorization: `Bearer ${idToken}` },
      });
      if (res.status !== 200) throw new Error(`token exchange failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { token: string }).token;
    },
    async readToken(read, ttlSeconds = 600) {
      return (await exchange.createReadToken({ read, ttlSeconds, name: 'test' })).token;
    },
    async close() {
      await server.close();
      await store.close();
      if (!options.issuer) await issuer.close();
      for (const other of Object.values(otherIssuers)) await other.close();
    },
  };
}

/** A netrc for `machine 127.0.0.1` whose password is the token (Nix 2.8 sends it as Basic auth). */
export function writeNetrc(dir: string, token: string): string {
  const path = join(dir, 'netrc');
  writeFileSync(path, `machine 127.0.0.1\nlogin sluice\npassword ${token}\n`, { mode: 0o600 });
  return path;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Spawns `sluice <args>` from the TypeScript sources with Node 24 (the `node` devDependency), as
 * `npx sluice` runs the bundle: a separate process, its own cwd, real signals. The sources rather
 * than dist/, because dist/ is rebuilt by the lead and may lag behind the code under test.
 */
export function spawnCli(
  args: string[],
  options: {
    cwd: string;
    /** `ulimit -f`: writes past it fail with EFBIG, as on a full disk. */
    maxFileKiB?: number;
  },
): ChildProcessWithoutNullStreams {
  const command = [
    join(ROOT, 'node_modules/.bin/node'),
    '--experimental-transform-types',
    '--no-warnings',
    '--import',
    join(ROOT, '__tests__/support/ts-loader.mjs'),
    join(ROOT, 'src/entrypoints/cli.ts'),
    ...args,
  ];
  const [file, ...rest] =
    options.maxFileKiB === undefined
      ? command
      : ['/bin/sh', '-c', `ulimit -f ${options.maxFileKiB} && exec "$0" "$@"`, ...command];
  return spawn(file!, rest, { cwd: options.cwd, env: { ...process.env, NODE_OPTIONS: '' }, stdio: 'pipe' });
}

/** `sluice serve` as its own process; resolves once it prints its URL. */
export async function serveCli(config: string, options: { cwd: string; maxFileKiB?: number }) {
  const child = spawnCli(['serve', '--config', config, '--listen', '127.0.0.1:0'], options);
  let logged = '';
  child.stdout.on('data', (chunk: Buffer) => (logged += chunk));
  let banner = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      banner += chunk;
      const found =
        /serving the cache at (http:\/\/\S+)\n[\s\S]*public key \(for trusted-public-keys\): (\S+)\n/.exec(
          banner,
        );
      if (found) resolve(found[1]!);
    });
    child.once('exit', (code) => reject(new Error(`sluice serve exited with ${code}: ${banner}`)));
  });
  const publicKey = /public key \(for trusted-public-keys\): (\S+)\n/.exec(banner)![1]!;
  return {
    url,
    publicKey,
    /** Its log so far (JSON lines). */
    log: () => logged,
    async kill() {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A store path's NAR (uncompressed) and the narinfo `nix copy` would upload for it. */
export interface NarUpload {
  hashPart: string;
  storePath: string;
  /** `nar/<filehash>.nar`. */
  narUrl: string;
  nar: Buffer;
  narinfo: NarInfo;
}

export async function narUploadFor(storePath: string): Promise<NarUpload> {
  const machine = makeNixMachine();
  const run = promisify(execFile);
  const { stdout: nar } = await run('nix-store', ['--dump', storePath], {
    env: machine.env,
    encoding: 'buffer',
    maxBuffer: 1 << 28,
  });
  const { stdout: refs } = await run('nix-store', ['--query', '--references', storePath], {
    env: machine.env,
  });
  const fileHash = Hash.of('sha256', nar);
  const narUrl = `nar/${fileHash.nix32}.nar`;
  const narinfo: NarInfo = {
    storePath,
    url: narUrl,
    compression: 'none',
    fileHash,
    fileSize: nar.length,
    narHash: fileHash,
    narSize: nar.length,
    references: refs
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((path) => path.slice('/nix/store/'.length)),
    sigs: [],
    extra: [],
  };
  return {
    hashPart: storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32),
    storePath,
    narUrl,
    nar,
    narinfo,
  };
}

/** PUTs a NAR and its narinfo the way Nix does; returns both statuses. */
export async function pushRaw(
  url: string,
  token: string | null,
  upload: NarUpload,
): Promise<[number, number]> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const nar = await fetch(`${url}/${upload.narUrl}`, {
    method: 'PUT',
    headers,
    body: new Uint8Array(upload.nar),
  });
  await nar.arrayBuffer();
  const narinfo = await fetch(`${url}/${upload.hashPart}.narinfo`, {
    method: 'PUT',
    headers,
    body: serializeNarInfo(upload.narinfo),
  });
  await narinfo.arrayBuffer();
  return [nar.status, narinfo.status];
}

/** What the server holds: NAR files (and leftover temp files), narinfos, uploads, audit rows, slice owners. */
export interface StoredState {
  files: string[];
  narinfos: number;
  uploads: number;
  audit: number;
  /** Slices bound to a repository. */
  slices: number;
}

export function storedState(dataDir: string): StoredState {
  const db = new DatabaseSync(join(dataDir, 'sluice.db'), { readOnly: true });
  try {
    const count = (table: string) =>
      Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);
    return {
      files: readdirSync(join(dataDir, 'nars')).sort(),
      narinfos: count('narinfos'),
      uploads: count('slice_nars'),
      audit: count('audit'),
      slices: count('slices'),
    };
  } finally {
    db.close();
  }
}

export interface RawResponse {
  status: number;
  text: string;
  headers: IncomingHttpHeaders;
  /** Whether the server asked for the body with 100 Continue. */
  continued: boolean;
}

/**
 * An HTTP request with the path sent exactly as given (fetch would normalise `..` away). With
 * `Expect: 100-continue`, the body is sent only if the server asks for it, as curl does.
 */
export function rawRequest(
  url: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let continued = false;
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    const headers: Record<string, string> = {
      ...(body ? { 'content-length': String(body.length) } : {}),
      ...options.headers,
    };
    const req = httpRequest({ hostname, port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers, continued }));
    });
    req.on('error', reject);
    const expectContinue = /100-continue/i.test(headers.expect ?? '');
    if (expectContinue) {
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
    } else req.end(body);
  });
}

/**
 * Substitutes `path` from the server into a fresh store of a fresh Nix "machine", trusting only the
 * server's key (and authenticating with `token` through a netrc, if given). Returns that machine,
 * the store and the closure it now holds, sorted.
 */
export async function substituteFresh(
  server: { url: string; publicKey: string },
  path: string,
  token?: string,
): Promise<{ machine: NixMachine; store: string; closure: string[] }> {
  const machine = makeNixMachine();
  const store = join(machine.dir, 'store');
  const netrc = token ? ['--option', 'netrc-file', writeNetrc(machine.dir, token)] : [];
  const trust = ['--option', 'substituters', server.url, '--option', 'trusted-public-keys', server.publicKey];
  await nix('nix-store', ['--store', store, '-r', path, ...netrc, ...trust], { machine });
  const closure = (await nix('nix-store', ['--store', store, '-qR', path], { machine }))
    .trim()
    .split('\n')
    .sort();
  return { machine, store, closure };
}

/** `bytes` compressed with zstd (at `level`, else the default), as a NAR file is uploaded. */
export async function zstdFile(bytes: Buffer, level?: number): Promise<Buffer> {
  return buffer(Readable.from([bytes]).pipe(createCompressor('zstd', level === undefined ? {} : { level })));
}
