/**
 * Substitution: Nix fetches a whole closure into an empty store through the proxy, directly from
 * the server, and from a file:// binary cache with the same compression (the local limit).
 */
import {
  copyToFileCache,
  makeSigningKey,
  substituteIntoFreshStore,
  type Substituter,
} from '../lib/binary-cache.js';
import { buildFan } from '../lib/closures.js';
import { NGINX_INSTALL_HINT, startNginx } from '../lib/nginx.js';
import type { Context, Sizes } from '../lib/context.js';
import type { Row, Side } from '../lib/report.js';
import { reason, writeNetrc } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { median, MiB, rotate, timed } from '../lib/stats.js';

/**
 * Each substitution side takes about a second, so one busy moment of the machine moves a median
 * of three: these sides run more repetitions than the others.
 */
export function substitutionRepetitions(sizes: Sizes): number {
  return sizes.repetitions * 2 + 1;
}

export async function substitutionScenarios(context: Context): Promise<Row[]> {
  const { sizes, log } = context;
  const closure = await buildFan(sizes.substitution);
  const description = `${closure.paths.length}-path, ${Math.round(closure.bytes / MiB)} MiB closure`;
  log(`substitution: built a ${description}`);

  const cacheDir = context.scratch('substitution-file-cache');
  const key = await makeSigningKey(context.scratch('substitution-key'));
  await copyToFileCache([closure.root!], cacheDir, key);
  const fromFile: Substituter = { url: `file://${cacheDir}`, publicKey: key.publicKey };
  // What HTTP itself costs here: nginx serving the very files of the file:// cache.
  const nginx = context.nginx
    ? await startNginx(context.nginx, cacheDir, context.scratch('nginx'))
    : undefined;

  let stack: Stack | undefined;
  let sluiceMissing = '';
  let direct: Substituter | undefined;
  try {
    stack = await startStack(context, ['cli', 'proxy']);
    const pusher = await stack.startJob();
    await pusher.drain([closure.root!]);
    await pusher.close();
    const reader = await stack.token(2);
    direct = {
      url: stack.server.url,
      publicKey: stack.server.publicKey,
      netrcFile: writeNetrc(context.scratch('netrc'), reader.token),
    };
  } catch (error) {
    sluiceMissing = reason(error);
    await stack?.close();
    stack = undefined;
  }

  const viaFile = async () => (await timed(() => substituteIntoFreshStore(closure.root!, fromFile))).seconds;
  const viaNginx = async () =>
    (
      await timed(() =>
        substituteIntoFreshStore(closure.root!, { url: nginx!.url, publicKey: key.publicKey }),
      )
    ).seconds;
  const viaServer = async () => (await timed(() => substituteIntoFreshStore(closure.root!, direct!))).seconds;
  const viaProxy = async () => {
    const daemon = await stack!.startJob(3);
    try {
      const from = { url: daemon.url, publicKey: stack!.server.publicKey };
      return (await timed(() => substituteIntoFreshStore(closure.root!, from))).seconds;
    } finally {
      await daemon.close();
    }
  };

  try {
    const repetitions = substitutionRepetitions(sizes);
    log(`substitution: ${repetitions} repetitions of ${stack ? 'proxy, server, file://' : 'file://'}`);
    const sides = [...(stack ? [viaProxy, viaServer] : []), viaFile, ...(nginx ? [viaNginx] : [])];
    const samples = await rotate(repetitions, sides);
    const unavailable: Side = { unavailable: sluiceMissing };
    const proxy: Side = stack ? { samples: samples[0]! } : unavailable;
    const server: Side = stack ? { samples: samples[1]! } : unavailable;
    const file: Side = { samples: samples[stack ? 2 : 0]! };
    const nginxSamples = nginx ? samples[stack ? 3 : 1]! : undefined;
    const httpNote = nginxSamples
      ? `for reference, nginx serving the same files over HTTP: ${median(nginxSamples).toFixed(2)} s, ` +
        `${(median(nginxSamples) / median(samples[stack ? 2 : 0]!)).toFixed(2)}× file://`
      : `nginx is not installed (${NGINX_INSTALL_HINT}): no HTTP reference`;
    return [
      {
        scenario: `proxy overhead: Nix substitutes a ${description} through the proxy vs directly from the server`,
        unit: 's',
        sluice: proxy,
        baseline: server,
        target: '≤ 1.15×',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.15,
      },
      {
        scenario: `substitution vs the local limit: same closure through the proxy vs from file:// (zstd)`,
        unit: 's',
        sluice: proxy,
        baseline: file,
        target: '≤ 1.5×',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.5,
        note: httpNote,
      },
    ];
  } finally {
    await nginx?.close();
    await stack?.close();
  }
}
