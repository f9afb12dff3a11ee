// The real PostgreSQL and Ceph RGW the tests (and benchmarks) run against, started once per run by
// jest's global setup unless the environment names running ones:
//   SLUICE_TEST_DATABASE_URL   a PostgreSQL URL whose role may CREATE DATABASE (each test takes its own)
//   SLUICE_TEST_S3_ENDPOINT    an S3 endpoint; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
// Otherwise they are started here, with ports and directories from the environment so that parallel
// runs on one machine do not collide (free ports and a fresh directory when unset):
//   SLUICE_TEST_PG_PORT, SLUICE_TEST_PG_DIR, SLUICE_TEST_RGW_PORT, SLUICE_TEST_CEPH_MON_PORT, SLUICE_TEST_CEPH_DIR
// A service that cannot start fails the run with its reason: tests on these parts never skip.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
export const POSTGRES_SCRIPT = join(HERE, 'postgres.sh');
export const CEPH_SCRIPT = join(HERE, 'ceph-rgw.sh');

async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return String(port);
}

/** `KEY=value` lines → an object. */
function parseOutput(stdout) {
  return Object.fromEntries(
    stdout
      .split('\n')
      .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line))
      .filter(Boolean)
      .map((match) => [match[1], match[2]]),
  );
}

async function runScript(script, args, env, what) {
  try {
    const { stdout } = await run(script, args, { env: { ...process.env, ...env }, timeout: 120_000 });
    return parseOutput(stdout);
  } catch (error) {
    const reason = (error.stderr || error.message || String(error)).trim();
    throw new Error(`cannot start ${what} for the tests: ${reason}`);
  }
}

/** A directory the `postgres` user can enter (the server runs as it when we are root). */
function serviceDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `sluice-${name}-`));
  chmodSync(dir, 0o755);
  return join(dir, 'data');
}

async function startPostgres(env) {
  if (env.SLUICE_TEST_DATABASE_URL) return;
  const pgEnv = {
    PG_PORT: env.SLUICE_TEST_PG_PORT || (await freePort()),
    PG_DIR: env.SLUICE_TEST_PG_DIR || serviceDir('pg'),
  };
  const out = await runScript(POSTGRES_SCRIPT, ['start'], pgEnv, `PostgreSQL on port ${pgEnv.PG_PORT}`);
  env.SLUICE_TEST_PG_PORT = pgEnv.PG_PORT;
  env.SLUICE_TEST_PG_DIR = pgEnv.PG_DIR;
  env.SLUICE_TEST_DATABASE_URL = out.DATABASE_URL;
  env.SLUICE_TEST_STARTED_PG = '1';
}

async function startCeph(env) {
  if (env.SLUICE_TEST_S3_ENDPOINT) return;
  const cephEnv = {
    RGW_PORT: env.SLUICE_TEST_RGW_PORT || (await freePort()),
    MON_PORT: env.SLUICE_TEST_CEPH_MON_PORT || (await freePort()),
    CEPH_DIR: env.SLUICE_TEST_CEPH_DIR || serviceDir('ceph'),
  };
  const out = await runScript(CEPH_SCRIPT, ['start'], cephEnv, `Ceph RGW on port ${cephEnv.RGW_PORT}`);
  env.SLUICE_TEST_RGW_PORT = cephEnv.RGW_PORT;
  env.SLUICE_TEST_CEPH_MON_PORT = cephEnv.MON_PORT;
  env.SLUICE_TEST_CEPH_DIR = cephEnv.CEPH_DIR;
  env.SLUICE_TEST_S3_ENDPOINT = out.S3_ENDPOINT;
  env.AWS_ACCESS_KEY_ID = out.AWS_ACCESS_KEY_ID;
  env.AWS_SECRET_ACCESS_KEY = out.AWS_SECRET_ACCESS_KEY;
  env.SLUICE_TEST_STARTED_CEPH = '1';
}

/** Starts what the environment does not provide; records what it started in `env`. */
export async function startTestServices(env = process.env) {
  // Test files that start services of their own (outage tests) put them here too: the run's own
  // temporary directory is private to root, and PostgreSQL runs as the postgres user.
  env.SLUICE_TEST_SERVICES_TMPDIR ||= tmpdir();
  // The SDK would otherwise probe the EC2 instance metadata endpoint for credentials.
  env.AWS_EC2_METADATA_DISABLED = 'true';
  const results = await Promise.allSettled([startPostgres(env), startCeph(env)]);
  const failed = results.filter((result) => result.status === 'rejected');
  if (failed.length > 0) {
    await stopTestServices(env);
    throw new Error(failed.map((result) => result.reason.message).join('\n'));
  }
}

/** Stops (and deletes) only the services startTestServices started. */
export async function stopTestServices(env = process.env) {
  const stops = [];
  // Only the directories of services started here: a directory named in the environment for a
  // service that was already running (SLUICE_TEST_DATABASE_URL, SLUICE_TEST_S3_ENDPOINT) is not ours.
  const stopped = [];
  if (env.SLUICE_TEST_STARTED_PG) {
    stopped.push(env.SLUICE_TEST_PG_DIR);
    const pgEnv = { PG_PORT: env.SLUICE_TEST_PG_PORT, PG_DIR: env.SLUICE_TEST_PG_DIR };
    stops.push(run(POSTGRES_SCRIPT, ['stop'], { env: { ...process.env, ...pgEnv } }).catch(() => undefined));
    delete env.SLUICE_TEST_STARTED_PG;
  }
  if (env.SLUICE_TEST_STARTED_CEPH) {
    stopped.push(env.SLUICE_TEST_CEPH_DIR);
    const cephEnv = {
      RGW_PORT: env.SLUICE_TEST_RGW_PORT,
      MON_PORT: env.SLUICE_TEST_CEPH_MON_PORT,
      CEPH_DIR: env.SLUICE_TEST_CEPH_DIR,
    };
    stops.push(run(CEPH_SCRIPT, ['stop'], { env: { ...process.env, ...cephEnv } }).catch(() => undefined));
    delete env.SLUICE_TEST_STARTED_CEPH;
  }
  await Promise.all(stops);
  // The parents serviceDir made (empty once the scripts removed their directories).
  for (const dir of stopped) {
    if (dir && dir.startsWith(tmpdir()) && dir.endsWith('/data'))
      rmSync(join(dir, '..'), { recursive: true, force: true });
  }
}
