/**
 * The post-build hook's program: Nix runs it (through the script from nix-config.ts) after every
 * local build; it tells the proxy daemon what was built. It must never fail or stall a build.
 */
import { controlPath, ControlRoute, type BuiltRequest } from '../contracts/control-api.js';

const HOOK_TIMEOUT_MS = 5_000;

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const proxyUrl = argv[0];
  const drvPath = env.DRV_PATH || undefined;
  // Nix 2.8 sets OUT_PATHS empty (NixOS/nix#6446): the daemon then resolves the derivation's outputs.
  const outPaths = (env.OUT_PATHS ?? '').split(/\s+/).filter(Boolean);
  if (proxyUrl && (drvPath || outPaths.length > 0)) {
    try {
      const response = await fetch(`${proxyUrl}${controlPath(ControlRoute.Built)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
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
