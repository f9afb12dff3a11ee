/**
 * `sluice serve [--config FILE] [--listen HOST:PORT] [--data DIR]`: runs the cache server until
 * SIGTERM or SIGINT, then lets requests in flight (uploads included) finish before exiting.
 * JSON logs go to stdout; the human banner (URL, public key) goes to stderr, so log shippers
 * reading stdout only ever see JSON.
 */
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { applyCliOverrides, applyEnvironment, loadConfig } from '../server/config/server-config.js';
import { startServer, type RunningServer } from '../server/index.js';

export const SERVE_USAGE = `usage: sluice serve [--config sluice.yml] [--listen HOST:PORT] [--data DIR]

  --config FILE       YAML configuration (every key optional; see docs/server.md)
  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080)
  --data DIR          data directory: keys, sluice.db, NAR files (default ./sluice-data)

environment:
  SLUICE_DATABASE_URL  PostgreSQL URL; overrides the config's 'database'
  AWS_*                S3 credentials for storage.blobs type s3 (the AWS SDK's standard chain)
`;

export interface ServeIo {
  stdout: Writable;
  stderr: Writable;
}

/** Starts the server from command-line flags; resolves to the running server, or an exit code for bad usage. */
export async function startFromArgs(argv: string[], io: ServeIo): Promise<RunningServer | number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        listen: { type: 'string' },
        data: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }));
  } catch (error) {
    io.stderr.write(`sluice serve: ${(error as Error).message}\n${SERVE_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(SERVE_USAGE);
    return 0;
  }
  try {
    const config = applyEnvironment(
      applyCliOverrides(await loadConfig(values.config), { listen: values.listen, data: values.data }),
    );
    const server = await startServer(config, {
      logDestination: io.stdout as unknown as { write(s: string): void },
    });
    io.stderr.write(
      `Sluice is serving the cache at ${server.url}\n` +
        `data directory: ${server.dataDir}\n` +
        `public key (for trusted-public-keys): ${server.publicKey}\n`,
    );
    return server;
  } catch (error) {
    // One line, never a stack: a ConfigError names the key and the problem.
    const message = (error as Error).message || String(error);
    io.stderr.write(`sluice serve: ${message.split('\n', 1)[0]}\n`);
    return 1;
  }
}

/** Runs `sluice serve …` until a signal; returns the exit code. */
export async function runServe(argv: string[], io: ServeIo = process): Promise<number> {
  const started = await startFromArgs(argv, io);
  if (typeof started === 'number') return started;
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      io.stderr.write(`sluice serve: ${signal}, finishing requests in flight\n`);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await started.close();
  return 0;
}
