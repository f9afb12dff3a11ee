/** A running Sluice for one scenario: the local OIDC issuer, a fresh server, and jobs (proxy daemons). */
import type { Context } from './context.js';
import { startIdTokenSource } from './id-tokens.js';
import {
  AUDIENCE,
  exchangeToken,
  sluiceUnavailable,
  startDaemon,
  startSluiceServer,
  type CacheToken,
  type Daemon,
  type IdTokenSource,
  type SluicePart,
  type SluiceServer,
} from './sluice.js';

export interface Stack {
  server: SluiceServer;
  ids: IdTokenSource;
  /** A cache token as job `job`'s main step would get it. */
  token(job?: number): Promise<CacheToken>;
  /** A new job: its own token and its own proxy daemon. */
  startJob(job?: number): Promise<Daemon>;
  close(): Promise<void>;
}

/** Starts issuer and server; throws with the reason when a part is not available in this tree. */
export async function startStack(context: Context, parts: SluicePart[], serverYaml = ''): Promise<Stack> {
  const missing = sluiceUnavailable(context, parts);
  if (missing) throw new Error(missing);
  const ids: IdTokenSource = await startIdTokenSource(AUDIENCE);
  let server: SluiceServer;
  try {
    server = await startSluiceServer(context, ids.issuerUrl, serverYaml);
  } catch (error) {
    await ids.close();
    throw error;
  }
  const token = (job = 1) => exchangeToken(server, ids, job);
  return {
    server,
    ids,
    token,
    startJob: async (job = 1) => startDaemon(context, server, await token(job), `daemon of job ${job}`),
    close: async () => {
      await server.close();
      await ids.close();
    },
  };
}
