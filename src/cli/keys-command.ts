/**
 * `sluice keys generate DIR [--name NAME]`: writes the narinfo signing key (`signing-key.sec`,
 * `signing-key.pub`) and the token key (`token-key.pem`) into DIR, for replicas that must all sign
 * with the same keys (`keys.signing_key_file`, `keys.token_key_file` in the config).
 */
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { GENERATED_KEY_FILES, generateKeyFiles } from '../server/keys.js';
import { defaultKeyName } from '../server/signing-key.js';

export const KEYS_USAGE = `usage: sluice keys generate DIR [--name NAME]

  Writes DIR/${GENERATED_KEY_FILES.signing} (narinfo signing key), DIR/${GENERATED_KEY_FILES.public} and
  DIR/${GENERATED_KEY_FILES.token} (token key); never overwrites. Name them in the config:
    keys: { signing_key_file: DIR/${GENERATED_KEY_FILES.signing}, token_key_file: DIR/${GENERATED_KEY_FILES.token} }

  --name NAME   the signing key's name, as Nix shows it (default: <host>-sluice-1)
`;

export async function runKeys(
  argv: string[],
  io: { stdout: Writable; stderr: Writable } = process,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { name: { type: 'string' } }, allowPositionals: true });
  } catch (error) {
    io.stderr.write(`sluice keys: ${(error as Error).message}\n${KEYS_USAGE}`);
    return 2;
  }
  const [subcommand, dir, ...extra] = parsed.positionals;
  if (subcommand !== 'generate' || dir === undefined || extra.length > 0) {
    io.stderr.write(KEYS_USAGE);
    return 2;
  }
  try {
    const { publicKey, files } = await generateKeyFiles(dir, parsed.values.name ?? defaultKeyName());
    io.stderr.write(`wrote ${files.join(', ')}\n`);
    io.stdout.write(`public key (for trusted-public-keys): ${publicKey}\n`);
    return 0;
  } catch (error) {
    io.stderr.write(`sluice keys generate: ${(error as Error).message}\n`);
    return 1;
  }
}
