/** The server's schedule: no collection before gc_interval, even one longer than Node's timer limit. */
import { describe, expect, it } from '@jest/globals';
import { DAY, TestClock } from '../../support/retention.js';
import { startTestServer } from '../../support/server.js';

describe('scheduled collections', () => {
  it('do not start before gc_interval, even for a year (beyond the 24.8-day timer limit)', async () => {
    const clock = new TestClock(Date.now() + 60 * DAY);
    const server = await startTestServer({ clock: clock.now, yaml: 'gc_interval: 1y\n' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).not.toMatch(/^sluice_gc_runs_total\{/m);
      // Run by hand, it counts.
      await server.collectGarbage();
      expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(
        /^sluice_gc_runs_total\{result="done"\} 1$/m,
      );
    } finally {
      await server.close();
    }
  });
});
