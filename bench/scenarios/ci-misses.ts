/**
 * The common CI case: a job whose closure the cache mostly lacks. A derivation refers to
 * `sizes.missJob` leaf derivations; a tenth of the leaves was built and pushed by an earlier job
 * (and copied to a file:// cache nginx serves). The job's Nix (`nix-store --realise --dry-run` of
 * the root derivation in an empty store) looks up the root's output, then every leaf's: 10% hits,
 * 90% misses. Timed through a fresh job's proxy vs the same Nix against nginx.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeNixMachine, nix, salt } from '../../__tests__/support/nix.js';
import { copyToFileCache, makeSigningKey } from '../lib/binary-cache.js';
import type { Context } from '../lib/context.js';
import { NGINX_INSTALL_HINT, startNginx, type StaticServer } from '../lib/nginx.js';
import type { Row, Side } from '../lib/report.js';
import { reason } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { rotate, timed } from '../lib/stats.js';

const run = promisify(execFile);
/** Every tenth leaf is in the cache. */
const HIT_EVERY = 10;

function expression(count: number, tag: string): string {
  return `rec {
    leaf = i: derivation {
      name = "sluice-bench-job-\${toString i}";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      salt = "${tag}";
      args = [ "-c" "/usr/bin/head -c 1024 /dev/urandom > $out" ];
    };
    leaves = builtins.genList leaf ${count};
    cached = builtins.genList (i: leaf (i * ${HIT_EVERY})) ${Math.ceil(count / HIT_EVERY)};
    root = derivation {
      name = "sluice-bench-job-root";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      salt = "${tag}";
      args = [ "-c" "echo \${toString leaves} > $out" ];
    };
  }`;
}

/** What `--dry-run` said it would fetch and build. */
function plan(output: string): { fetched: number; built: number } {
  const count = (pattern: RegExp) => Number(pattern.exec(output)?.[1] ?? 0);
  return {
    fetched: count(/these (\d+) paths will be fetched/),
    built: count(/these (\d+) derivations will be built/),
  };
}

export async function ciMissesScenarios(context: Context): Promise<Row[]> {
  const { sizes, log } = context;
  const count = sizes.missJob;
  const work = context.scratch('ci-misses');
  const file = join(work, 'job.nix');
  writeFileSync(file, expression(count, salt()));
  const hitCount = Math.ceil(count / HIT_EVERY);
  log(`ci misses: building the ${hitCount} cached leaves of a ${count}-leaf job`);
  const cached = (await nix('nix-build', ['--no-out-link', '--max-jobs', '4', file, '-A', 'cached']))
    .trim()
    .split('\n');
  const cacheDir = context.scratch('ci-misses-file-cache');
  const key = await makeSigningKey(context.scratch('ci-misses-key'));
  await copyToFileCache(cached, cacheDir, key);
  let nginx: StaticServer | undefined;
  if (context.nginx) nginx = await startNginx(context.nginx, cacheDir, context.scratch('nginx'));

  let stack: Stack | undefined;
  let sluiceMissing = '';
  try {
    stack = await startStack(context, ['cli', 'proxy']);
    const pusher = await stack.startJob();
    await pusher.drain(cached);
    await pusher.close();
  } catch (error) {
    sluiceMissing = reason(error);
    await stack?.close();
    stack = undefined;
  }
  // The job's store: the derivations only, as on a runner that has just evaluated the job.
  const store = mkdtempSync(join(tmpdir(), 'sluice-bench-job-store-'));
  const rootDrv = (await nix('nix-instantiate', ['--store', store, file, '-A', 'root'])).trim();

  /** Nix's lookups for the job, on a fresh machine (no narinfo cache of its own). */
  const dryRun = async (url: string, publicKey: string): Promise<number> => {
    const machine = makeNixMachine();
    try {
      const options = ['--option', 'substituters', url, '--option', 'trusted-public-keys', publicKey];
      const { seconds, value } = await timed(() =>
        run('nix-store', ['--store', store, '--realise', '--dry-run', rootDrv, ...options], {
          env: machine.env,
          encoding: 'utf8',
        }),
      );
      // The plan goes to stderr.
      const { fetched, built } = plan(value.stderr);
      if (fetched !== hitCount || built !== count - hitCount + 1)
        throw new Error(
          `dry run via ${url} planned ${fetched} fetched, ${built} built: ${value.stderr.slice(0, 300)}`,
        );
      return seconds;
    } finally {
      rmSync(machine.dir, { recursive: true, force: true });
    }
  };
  const viaProxy = async () => {
    const daemon = await stack!.startJob(2);
    try {
      await daemon.lookupSetLoaded();
      return await dryRun(daemon.url, stack!.server.publicKey);
    } finally {
      await daemon.close();
    }
  };
  const viaNginx = () => dryRun(nginx!.url, key.publicKey);

  try {
    log(`ci misses: Nix plans the job (${count + 1} lookups, 90% misses), proxy vs nginx`);
    const sides = [...(stack ? [viaProxy] : []), ...(nginx ? [viaNginx] : [])];
    const samples = await rotate(sizes.repetitions, sides);
    const sluice: Side = stack ? { samples: samples[0]! } : { unavailable: sluiceMissing };
    const baseline: Side = nginx
      ? { samples: samples[stack ? 1 : 0]! }
      : { unavailable: `nginx is not installed (${NGINX_INSTALL_HINT})` };
    return [
      {
        scenario: `a job whose closure is 90% misses: Nix looks up ${count + 1} paths (${hitCount} cached) through the proxy vs nginx`,
        unit: 's',
        sluice,
        baseline,
        target: '≤ 2× nginx',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 2,
      },
    ];
  } finally {
    rmSync(store, { recursive: true, force: true });
    await nginx?.close();
    await stack?.close();
  }
}
