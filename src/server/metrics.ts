/** Prometheus metrics on a registry of the server's own (so two servers in one process don't mix). */
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_' });
  }
}
