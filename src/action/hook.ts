/**
 * The post-build hook's program: Nix runs it (through the script from nix-config.ts) after every
 * local build; it tells the proxy daemon what was built. It must never fail or stall a build.
 * It runs as whoever runs the builds: this user (single-user Nix) or root (the Nix daemon), and
 * both can read the 0600 file that holds the daemon's control secret.
 */
import { readFile } from 'node:fs/promises';
import { controlPath, ControlRoute, type BuiltRequest } from '../contracts/control-api.js';

const HOOK_TIMEOUT_MS = 5_000;

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const [proxyUrl, secretFile] = argv;
  const drvPath = env.DRV_PATH || undefined;
  // Nix 2.8 sets OUT_PATHS empty (NixOS/nix#6446): the daemon then resolves the derivation's outputs.
  const outPaths = (env.OUT_PATHS ?? '').split(/\s+/).filter(Boolean);
  if (proxyUrl && secretFile && (drvPath || outPaths.length > 0)) {
    try {
      const secret = (await readFile(secretFile, 'utf8')).trim();
      const response = await fetch(`${proxyUrl}${controlPath(ControlRoute.Built)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
        body: JSON.stringify({ drvPath, outPaths } satisfies BuiltRequest),
        signal: AbortSignal.timeout(HOOK_TIMEOUT_MS),
      });
      await response.body?.cancel();
    } catch {
      // The build matters more than the push; post's store diff catches what is missed here.
    }
  }
  process.exit(0);
}
