/**
 * The Action's `pin: NAME`: once the drain has pushed everything, the daemon asks the server to pin
 * the paths the job produced (the store diff and what the post-build hook reported) in its write
 * slice, through `POST /_api/v1/pins` with its own cache token. Paths the slice does not hold
 * (found in another slice or upstream, filtered out) are skipped by the server.
 */
import type { PinReport } from '../../contracts/control-api.js';
import type { PinConfig } from '../../contracts/daemon-config.js';
import type { Logger } from '../report/daemon-log.js';
import type { Stats } from '../report/stats.js';
import type { Upstream } from '../upstream/upstream-client.js';

export class Pinner {
  private readonly roots = new Set<string>();

  constructor(
    private readonly server: Upstream,
    private readonly config: PinConfig,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {}

  add(paths: readonly string[]): void {
    for (const path of paths) if (!path.endsWith('.drv')) this.roots.add(path);
  }

  async pin(): Promise<void> {
    const outcome = await this.request();
    this.stats.pin = outcome;
    if (outcome.error) {
      this.stats.error(`pin ${outcome.name}: ${outcome.error}`);
      this.log.warn(outcome, 'pin failed');
    } else this.log.info(outcome, 'pinned');
  }

  private async request(): Promise<PinReport> {
    const name = this.config.name;
    if (this.roots.size === 0) return { name, paths: 0, error: 'the job produced no store paths to pin' };
    const body = JSON.stringify({
      name,
      paths: [...this.roots],
      skip_missing: true,
      ...(this.config.ttl ? { ttl: this.config.ttl } : {}),
    });
    try {
      const response = await this.server.requestText({
        method: 'POST',
        path: '/_api/v1/pins',
        headers: { 'content-type': 'application/json' },
        body: () => body,
      });
      if (response.statusCode !== 201) {
        return {
          name,
          paths: 0,
          error: `the server answered ${response.statusCode}: ${response.text.slice(0, 300)}`,
        };
      }
      return { name, paths: (JSON.parse(response.text) as { paths: number }).paths };
    } catch (error) {
      return { name, paths: 0, error: (error as Error).message };
    }
  }
}
