/** Prometheus metrics on a registry of the server's own (so two servers in one process don't mix). */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'sluice_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly narinfoLookups = new Counter({
    name: 'sluice_narinfo_lookups_total',
    help: 'narinfo GET/HEAD lookups by result (hit or miss)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly bytesIn = new Counter({
    name: 'sluice_bytes_in_total',
    help: 'Request body bytes received for uploads',
    registers: [this.registry],
  });
  readonly bytesOut = new Counter({
    name: 'sluice_bytes_out_total',
    help: 'NAR bytes sent',
    registers: [this.registry],
  });
  readonly narinfoConflicts = new Counter({
    name: 'sluice_narinfo_conflicts_total',
    help: 'Lookups where readable slices hold different narinfos (NarHash) for one store path; answered by precedence',
    registers: [this.registry],
  });
  readonly rejectedUploads = new Counter({
    name: 'sluice_rejected_uploads_total',
    help: 'Uploads (NARs and narinfos) refused, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'sluice_rate_limited_total',
    help: 'Requests answered 429, by limit (token_exchanges, failed_auth)',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  readonly sliceBytes = new Gauge({
    name: 'sluice_slice_bytes',
    help: 'Bytes of NAR files per slice, as of the last collection',
    labelNames: ['slice'] as const,
    registers: [this.registry],
  });
  readonly slicePaths = new Gauge({
    name: 'sluice_slice_paths',
    help: 'Store paths per slice, as of the last collection',
    labelNames: ['slice'] as const,
    registers: [this.registry],
  });
  readonly gcCollectedBytes = new Counter({
    name: 'sluice_gc_collected_bytes_total',
    help: 'Bytes removed by garbage collection: narinfos by reason (age, size, pr-ttl), NAR files (orphan, unused)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly gcRuns = new Counter({
    name: 'sluice_gc_runs_total',
    help: 'Garbage collections by result (done, skipped, failed)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_' });
  }

  /**
   * The Prometheus text, with the per-slice series only of slices `shown` says yes to: a slice's
   * name (a repository's, a pull request's) is as much the reader's business as its narinfos.
   */
  async text(shown: (slices: string[]) => Promise<Set<string>>): Promise<string> {
    const lines = (await this.registry.metrics()).split('\n');
    const slices = new Set(lines.map(sliceOf).filter((slice) => slice !== undefined));
    const visible = await shown([...slices]);
    return lines
      .filter((line) => {
        const slice = sliceOf(line);
        return slice === undefined || visible.has(slice);
      })
      .join('\n');
  }
}

/** The slice a line of `sluice_slice_bytes` or `sluice_slice_paths` is about (names need no escaping). */
function sliceOf(line: string): string | undefined {
  return /^sluice_slice_(?:bytes|paths)\{(?:.*,)?slice="([^"]*)"/.exec(line)?.[1];
}
