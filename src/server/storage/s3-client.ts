/**
 * The S3 client Sluice uses, and what its errors mean. Credentials come from the SDK's standard
 * chain (environment, profile, instance role), never from Sluice's config. Timeouts are short and
 * retries few, so a store that is down turns into a prompt 503 rather than a hung request.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { StorageUnavailableError } from './unavailable.js';

export interface S3Location {
  bucket: string;
  /** An S3-compatible endpoint (Ceph RGW, MinIO, R2); absent for AWS itself. */
  endpoint?: string;
  region: string;
  /** Put before every key, as written (`sluice/` keeps the NARs in a "directory"). */
  prefix: string;
  forcePathStyle: boolean;
}

export function createS3Client(location: S3Location): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: 128 };
  const client = new S3Client({
    region: location.region,
    ...(location.endpoint ? { endpoint: location.endpoint } : {}),
    forcePathStyle: location.forcePathStyle,
    // Flexible checksums send streamed bodies as aws-chunked with trailers, which Ceph RGW and
    // other S3-compatible stores refuse; Sluice checks every byte itself anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 2,
    requestHandler: {
      connectionTimeout: 2000,
      requestTimeout: 60_000,
      httpAgent: new Agent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
    },
  });
  signHeadersOnly(client);
  return client;
}

/** SigV4's name for a body left out of the signature. */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/**
 * Byte bodies (parts, whole objects) are signed as UNSIGNED-PAYLOAD: SigV4 would otherwise hash
 * every byte with SHA-256 (7% of the server's CPU in a push) only to prove what Sluice already
 * verified; the part's CRC32 travels with it instead (docs/operations.md, "Integrity").
 */
function signHeadersOnly(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { body?: unknown; headers?: Record<string, string> };
      if (request.body instanceof Uint8Array && request.headers)
        request.headers['x-amz-content-sha256'] = UNSIGNED_PAYLOAD;
      return next(args);
    },
    { step: 'build', name: 'sluiceUnsignedPayload' },
  );
}

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

export function httpStatusOf(error: unknown): number | undefined {
  return (error as SdkError | undefined)?.$metadata?.httpStatusCode;
}

export function isNotFound(error: unknown): boolean {
  const name = (error as SdkError | undefined)?.name;
  return httpStatusOf(error) === 404 || name === 'NoSuchKey' || name === 'NotFound';
}

export function isPreconditionFailed(error: unknown): boolean {
  const status = httpStatusOf(error);
  // 409 ConditionalRequestConflict: AWS's answer when a concurrent conditional write raced this one.
  return status === 412 || status === 409 || (error as SdkError).name === 'PreconditionFailed';
}

/** The store could not be reached or said it is overloaded: worth a 503 and a retry later. */
export function isS3Unavailable(error: unknown): boolean {
  const status = httpStatusOf(error);
  if (status !== undefined) return status >= 500;
  // No HTTP answer at all: refused, reset, timed out, DNS. (Duck-typed: errors from Node's sockets
  // may come from another realm, where `instanceof Error` is false.)
  return (
    typeof error === 'object' && error !== null && (error as SdkError).name !== 'CredentialsProviderError'
  );
}

/** Awaits an S3 call; an unreachable or failing store becomes a StorageUnavailableError (503). */
export async function guarded<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (isS3Unavailable(error)) throw new StorageUnavailableError('the object store', error);
    throw error;
  }
}
