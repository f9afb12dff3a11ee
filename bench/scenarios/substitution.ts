/**
 * Substitution: Nix fetches a whole closure into an empty store through the proxy, directly from
 * the server, and from a file:// binary cache with the same compression (the local limit). With
 * nginx installed, also both ways through nginx in front of the same server, sending the NAR files
 * itself (X-Accel-Redirect, docs/operations.md), beside nginx serving the file:// cache's files. And
 * the floor of the proxy's design: a bare Node process answering the narinfos from memory and
 * redirecting every NAR GET to the server, as the proxy's NAR links do, with no other work.
 */
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { StorePath } from '../../src/nix/store-path.js';
import {
  copyToFileCache,
  makeSigningKey,
  substituteIntoFreshStore,
  type Substituter,
} from '../lib/binary-cache.js';
import { buildFan } from '../lib/closures.js';
import {
  ACCEL_PREFIX,
  NGINX_INSTALL_HINT,
  startNginx,
  startNginxFront,
  type StaticServer,
} from '../lib/nginx.js';
import { startBareRedirector } from '../lib/bare-http.js';
import type { Context, Sizes } from '../lib/context.js';
import type { Row, Side } from '../lib/report.js';
import { reason, startDaemon, writeNetrc, type Daemon } from '../lib/sluice.js';
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
  let front: StaticServer | undefined;
  let floor: StaticServer | undefined;
  let sluiceMissing = '';
  let direct: Substituter | undefined;
  try {
    // Requests straight to the server get the bytes from it; only nginx's say that nginx sends them.
    const accel = context.nginx
      ? `storage:\n  blobs:\n    type: fs\n    x_accel_redirect: ${ACCEL_PREFIX}\n`
      : '';
    stack = await startStack(context, ['cli', 'proxy'], accel);
    const pusher = await stack.startJob();
    await pusher.drain([closure.root!]);
    await pusher.close();
    const reader = await stack.token(2);
    direct = {
      url: stack.server.url,
      publicKey: stack.server.publicKey,
      netrcFile: writeNetrc(context.scratch('netrc'), reader.token),
    };
    floor = await startBareRedirector(
      context.scratch('bare-redirector'),
      await serverNarInfos(stack.server.url, reader.token, closure.paths),
      stack.server.url,
    );
    if (context.nginx) {
      // The server makes its data directory 0700 (keys); nginx's workers need passage to nars/.
      chmodSync(stack.server.dataDir, 0o711);
      front = await startNginxFront(
        context.nginx,
        stack.server.url,
        join(stack.server.dataDir, 'nars'),
        context.scratch('nginx-front'),
      );
    }
  } catch (error) {
    sluiceMissing = reason(error);
    await floor?.close();
    floor = undefined;
    await stack?.close();
    stack = undefined;
  }

  // Each side is read when its sample runs: those that need the server exist only when it started.
  const from = (substituter: () => Substituter) => async () =>
    (await timed(() => substituteIntoFreshStore(closure.root!, substituter()))).seconds;
  const viaFile = from(() => fromFile);
  const viaNginx = from(() => ({ url: nginx!.url, publicKey: key.publicKey }));
  const viaServer = from(() => direct!);
  // The same netrc: Nix sends the token to the server after each redirect, as a link would carry it.
  const viaFloor = from(() => ({ ...direct!, url: floor!.url }));
  const viaFront = from(() => ({ ...direct!, url: front!.url }));
  const viaProxy = async () => viaDaemon(await stack!.startJob(3));
  // The job's daemon talks to nginx, which the server's links then point to.
  const viaProxyFront = async () =>
    viaDaemon(
      await startDaemon(
        context,
        { ...stack!.server, url: front!.url },
        await stack!.token(4),
        'daemon of job 4',
      ),
    );
  const viaDaemon = async (daemon: Daemon) => {
    try {
      return await from(() => ({ url: daemon.url, publicKey: stack!.server.publicKey }))();
    } finally {
      await daemon.close();
    }
  };

  try {
    const repetitions = substitutionRepetitions(sizes);
    log(
      `substitution: ${repetitions} repetitions of ${stack ? 'proxy, server, file://' : 'file://'}` +
        (front ? ', nginx, and proxy and server behind nginx' : ''),
    );
    const sides = [
      ...(stack ? [viaProxy, viaServer] : []),
      viaFile,
      ...(nginx ? [viaNginx] : []),
      ...(front ? [viaProxyFront, viaFront] : []),
      ...(stack ? [viaFloor] : []),
    ];
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
    const floorSamples = stack ? samples[sides.length - 1]! : undefined;
    const floorNote = floorSamples
      ? `the floor of any proxy that redirects NARs, a bare node:http server in its own process answering the same narinfos from memory and every NAR GET with a redirect to the server: ` +
        `${median(floorSamples).toFixed(2)} s, ${(median(floorSamples) / median(samples[1]!)).toFixed(2)}× direct`
      : undefined;
    return [
      {
        scenario: `proxy overhead: Nix substitutes a ${description} through the proxy vs directly from the server`,
        unit: 's',
        sluice: proxy,
        baseline: server,
        target: '≤ 1.15×',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.15,
        ...(floorNote ? { note: floorNote } : {}),
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
      ...(front ? behindNginxRows(description, samples[4]!, samples[5]!, file) : []),
    ];
  } finally {
    await front?.close();
    await floor?.close();
    await nginx?.close();
    await stack?.close();
  }
}

/** The server's narinfos of `paths` by request path, read with `token` as Nix would. */
async function serverNarInfos(
  server: string,
  token: string,
  paths: string[],
): Promise<Record<string, string>> {
  const narinfos: Record<string, string> = {};
  const authorization = `Basic ${Buffer.from(`:${token}`).toString('base64')}`;
  for (const path of paths) {
    const request = `/${StorePath.parse(path).hashPart}.narinfo`;
    const response = await fetch(`${server}${request}`, { headers: { authorization } });
    if (response.status !== 200)
      throw new Error(`the server answered ${request} with HTTP ${response.status}`);
    narinfos[request] = await response.text();
  }
  return narinfos;
}

/** The same two targets with nginx in front of the server, sending the NAR files (X-Accel-Redirect). */
function behindNginxRows(description: string, proxy: number[], server: number[], file: Side): Row[] {
  return [
    {
      scenario: `behind nginx: proxy overhead: Nix substitutes the ${description} through the proxy vs directly, the server behind nginx, which sends the NAR files (X-Accel-Redirect)`,
      unit: 's',
      sluice: { samples: proxy },
      baseline: { samples: server },
      target: '≤ 1.15×',
      met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.15,
    },
    {
      scenario: `behind nginx: substitution vs the local limit: same closure through the proxy (server behind nginx) vs from file:// (zstd)`,
      unit: 's',
      sluice: { samples: proxy },
      baseline: file,
      target: '≤ 1.5×',
      met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.5,
    },
  ];
}
