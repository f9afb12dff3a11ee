/**
 * The files of a binary cache written by `nix copy --to file://…?compression=zstd`, and two ways
 * of uploading them with the same client-side work (each file read into memory, then sent; a fixed
 * number of store paths in flight, each its NAR then its narinfo, as Nix orders them): PUT through
 * a Sluice server with a cache token, as `nix copy --to http://…` with a netrc would, or PutObject
 * straight into a bucket with the AWS SDK, as a script making a plain S3 binary cache would.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Pool } from 'undici';

/** One store path's files: its compressed NAR and its narinfo, by their names in the cache. */
export interface CachedPath {
  nar: string;
  narinfo: string;
}

export interface CacheFiles {
  dir: string;
  paths: CachedPath[];
  /** Bytes of all files. */
  bytes: number;
}

export function readCacheFiles(dir: string): CacheFiles {
  const found: (CachedPath & { size: number })[] = [];
  let bytes = 0;
  for (const name of readdirSync(dir).filter((file) => file.endsWith('.narinfo'))) {
    const text = readFileSync(join(dir, name), 'utf8');
    const url = /^URL: (\S+)$/m.exec(text)?.[1];
    const size = /^FileSize: (\d+)$/m.exec(text)?.[1];
    if (!url || !size) throw new Error(`${name} has no URL or FileSize`);
    found.push({ nar: url, narinfo: name, size: Number(size) });
    bytes += Number(size) + text.length;
  }
  // Large NARs first, as a push of big outputs would start, and the same order for every side.
  found.sort((a, b) => b.size - a.size || a.narinfo.localeCompare(b.narinfo));
  return { dir, paths: found.map(({ nar, narinfo }) => ({ nar, narinfo })), bytes };
}

/** Sends one cache file (`name` relative to the cache root) with its bytes. */
export type PutFile = (name: string, body: Buffer) => Promise<void>;

/** Uploads every path, `concurrency` at a time, each NAR before its narinfo. */
export async function uploadCache(files: CacheFiles, put: PutFile, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < files.paths.length) {
      const path = files.paths[next++]!;
      await put(path.nar, await readFile(join(files.dir, path.nar)));
      await put(path.narinfo, await readFile(join(files.dir, path.narinfo)));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** PUTs through a Sluice server: Basic auth with the token as password, as Nix sends a netrc's. */
export function putThroughServer(
  serverUrl: string,
  token: string,
): { put: PutFile; close: () => Promise<void> } {
  const pool = new Pool(serverUrl, { connections: 16 });
  const authorization = `Basic ${Buffer.from(`:${token}`).toString('base64')}`;
  return {
    put: async (name, body) => {
      const response = await pool.request({
        method: 'PUT',
        path: `/${name}`,
        headers: { authorization, 'content-type': 'application/octet-stream' },
        body,
        headersTimeout: 600_000,
        bodyTimeout: 600_000,
      });
      const text = await response.body.text();
      if (![200, 201, 204].includes(response.statusCode))
        throw new Error(`PUT /${name} answered ${response.statusCode}: ${text.slice(0, 300)}`);
    },
    close: () => pool.close(),
  };
}

/** PutObject into the bucket, under the name the file has in the cache. */
export function putIntoBucket(client: S3Client, bucket: string): PutFile {
  return async (name, body) => {
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: name, Body: body, ContentLength: body.length }),
    );
  };
}
