import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { Hash } from '../../src/nix/hash.js';
import { createDecompressor } from '../../src/nix/nar.js';
import { compressedNar, NarSizeError } from '../../src/proxy/push/nar-file.js';
import { dumpNar } from '../../src/proxy/push/nar-dump.js';
import { nixBuild, salt } from '../support/nix.js';

const execFileAsync = promisify(execFile);

async function sha256(stream: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest('hex');
}

describe('dumpNar', () => {
  it('writes exactly the bytes nix-store --dump writes', async () => {
    // Regular, executable, empty and odd-sized files, nested dirs, symlinks, names whose byte order
    // differs from their UTF-16 order, and a 3 MiB file spanning several read chunks.
    const script = [
      'set -e',
      '/bin/mkdir -p $out/dir/sub $out/empty-dir',
      'echo hello > $out/dir/a.txt',
      ': > $out/empty',
      'printf 1234567 > $out/seven',
      '/usr/bin/head -c 3145731 /dev/urandom > $out/big',
      'echo "#!/bin/sh" > $out/dir/run && /bin/chmod +x $out/dir/run',
      '/bin/ln -s dir/a.txt $out/link && /bin/ln -s /nonexistent $out/dangling',
      'echo x > "$out/dir/sub/\u00e9t\u00e9" && echo y > "$out/dir/sub/\u{1F600}" && echo z > "$out/dir/sub/\uFB01" && echo w > $out/dir/sub/Z',
    ].join('\n');
    const [out] = await nixBuild(
      `derivation { name = "sluice-nar-dump"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${salt()}"; args = [ "-c" ${JSON.stringify(script)} ]; }`,
    );
    const [single] = await nixBuild(
      `derivation { name = "sluice-nar-file"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${salt()}"; args = [ "-c" "echo just-a-file > $out" ]; }`,
    );
    for (const path of [out!, single!]) {
      const { stdout } = await execFileAsync('nix-store', ['--dump', path], {
        encoding: 'buffer',
        maxBuffer: 64 << 20,
      });
      expect(await sha256(dumpNar(path))).toBe(createHash('sha256').update(stdout).digest('hex'));
    }
  });
});

/**
 * The chunks joined, each copied only after a pause (as a socket takes a while): a chunk's buffer
 * may be reused once the next is asked for, and not before.
 */
async function copied(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const copies: Buffer[] = [];
  for await (const chunk of chunks) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    copies.push(Buffer.from(chunk));
  }
  return Buffer.concat(copies);
}

describe('compressedNar', () => {
  it('is the zstd NAR of the path, and fails if the NAR is not the size the store says', async () => {
    const [path] = await nixBuild(
      `derivation { name = "sluice-nar-body"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${salt()}"; args = [ "-c" "/usr/bin/head -c 700000 /dev/urandom > $out" ]; }`,
    );
    const { stdout: nar } = await execFileAsync('nix-store', ['--dump', path!], {
      encoding: 'buffer',
      maxBuffer: 64 << 20,
    });
    const info = { path: path!, narHash: Hash.of('sha256', nar), narSize: nar.length, references: [] };
    const file = await copied(compressedNar(info, 'zstd'));
    expect(await buffer(Readable.from([file]).pipe(createDecompressor('zstd')))).toEqual(nar);
    // Uncompressed, the chunks pass on as they are: each must be its own copy, not the reused buffer.
    expect(await copied(compressedNar(info, 'none'))).toEqual(nar);

    for (const narSize of [nar.length - 1, nar.length + 1]) {
      const error = await copied(compressedNar({ ...info, narSize }, 'zstd')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NarSizeError);
      expect((error as Error).message).toMatch(
        new RegExp(`^the NAR of ${path} is (more than )?\\d+ bytes, but the store says ${narSize}$`),
      );
    }
  });
});
