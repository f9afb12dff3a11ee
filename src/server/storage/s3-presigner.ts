/**
 * Presigned GETs at the rate NAR links are asked for. The SDK's `getSignedUrl` resolves the
 * bucket's endpoint and runs the client's whole middleware stack for every URL (about 1 ms each on
 * the bench machine): a NAR links answer for a 200-path closure spent 0.2 s on it before Nix got
 * its first redirect. Here the endpoint is resolved once, by that same `getSignedUrl` for a
 * placeholder key, and each URL is then one SigV4 query signature by the SDK's own presigner
 * (about a tenth of the time).
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl, S3RequestPresigner } from '@aws-sdk/s3-request-presigner';

type RequestToSign = Parameters<S3RequestPresigner['presign']>[0];

/** The bucket's place as the SDK resolved it: everything of an object's URL but its key. */
interface BucketEndpoint {
  protocol: string;
  hostname: string;
  port: number | undefined;
  /** `hostname[:port]`, the signed Host header. */
  host: string;
  /** `/<bucket>` with path-style addressing, empty with virtual-hosted buckets. */
  pathPrefix: string;
  region: string;
  presigner: S3RequestPresigner;
}

const PLACEHOLDER_KEY = 'k';

/** RFC 3986 escaping, as SigV4 canonicalises a path segment or a query value. */
function escape(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export class ObjectPresigner {
  private endpoint: Promise<BucketEndpoint> | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  /** A URL that GETs `objectKey` without credentials for `expiresIn` seconds. */
  async presignGet(objectKey: string, expiresIn: number): Promise<string> {
    const endpoint = await this.resolved();
    const { host } = endpoint;
    const request: RequestToSign = {
      method: 'GET',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      ...(endpoint.port === undefined ? {} : { port: endpoint.port }),
      path: `${endpoint.pathPrefix}/${objectKey.split('/').map(escape).join('/')}`,
      query: { 'x-id': 'GetObject' },
      headers: { host },
    };
    const signed = await endpoint.presigner.presign(request, {
      expiresIn,
      signingRegion: endpoint.region,
    });
    const query = Object.entries(signed.query ?? {})
      .flatMap(([name, value]) =>
        (Array.isArray(value) ? value : [value]).map((v) =>
          v === null ? escape(name) : `${escape(name)}=${escape(v)}`,
        ),
      )
      .join('&');
    return `${endpoint.protocol}//${host}${signed.path}?${query}`;
  }

  private resolved(): Promise<BucketEndpoint> {
    // A failed resolution (credentials not there yet) is tried again by the next link.
    this.endpoint ??= this.resolve().catch((error: unknown) => {
      this.endpoint = undefined;
      throw error;
    });
    return this.endpoint;
  }

  private async resolve(): Promise<BucketEndpoint> {
    const sample = new URL(
      await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: PLACEHOLDER_KEY }), {
        expiresIn: 60,
      }),
    );
    if (!sample.pathname.endsWith(`/${PLACEHOLDER_KEY}`))
      throw new Error(`unexpected presigned URL shape for bucket ${this.bucket}`);
    // X-Amz-Credential is <access key>/<date>/<region>/<service>/aws4_request.
    const scope = (sample.searchParams.get('X-Amz-Credential') ?? '').split('/');
    const [region, service] = [scope[2], scope[3]];
    if (!region || !service)
      throw new Error(`presigned URL without a credential scope for bucket ${this.bucket}`);
    return {
      protocol: sample.protocol,
      hostname: sample.hostname,
      port: sample.port === '' ? undefined : Number(sample.port),
      host: sample.host,
      pathPrefix: sample.pathname.slice(0, -(PLACEHOLDER_KEY.length + 1)),
      region,
      presigner: new S3RequestPresigner({
        ...this.client.config,
        signingName: service,
        region: () => Promise.resolve(region),
      }),
    };
  }
}
