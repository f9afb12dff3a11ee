/**
 * Pull-request slices through the real exchange (the local OIDC issuer stands in for GitHub's): a
 * same-repository pull-request job writes `acme/app/pr-7`, a main-branch job cannot read it, the
 * pull request's later job reads (and substitutes) it, another pull request cannot, and it is
 * gone once its TTL has passed since its last push.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { addTinyPaths } from '../../support/nix.js';
import { DAY, TestClock, nixCopy, readNarInfo } from '../../support/retention.js';
import { startTestServer, substituteFresh, type TestServer } from '../../support/server.js';
import { githubClaims } from '../../support/oidc-issuer.js';

const YAML = `slices:
  - name: acme/app
    read:
      - { repository_id: "100001" }
    write:
      - { repository_id: "100001", ref: refs/heads/main, event_name: push }
    pull_requests: { ttl: 7d }
`;
// In the future: NAR files are aged by their mtime too, which is real time.
const clock = new TestClock(Date.now() + DAY);
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ clock: clock.now, yaml: YAML });
});
afterAll(async () => {
  await server?.close();
});

const pr = (number: number, event = 'pull_request') => ({
  event_name: event,
  ref: `refs/pull/${number}/merge`,
});

async function exchange(
  claims: Record<string, string>,
): Promise<{ token: string; read: string[]; write: string | null }> {
  const res = await fetch(`${server.url}/_api/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await server.issuer.sign(githubClaims(claims))}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { token: string; read: string[]; write: string | null };
}

describe('pull-request slices', () => {
  it('are written by the pull request, read only by it, and removed after their TTL', async () => {
    const job = await exchange(pr(7));
    expect([job.write, job.read.sort()]).toEqual(['acme/app/pr-7', ['acme/app', 'acme/app/pr-7']]);
    const [path] = await addTinyPaths(1, 'pr-slice');
    await nixCopy(server.url, job.token, [path as string]);

    // The main branch's jobs, another pull request and a read token for acme/* see nothing of it.
    const main = await exchange({});
    expect(main.write).toBe('acme/app');
    expect(await readNarInfo(server.url, main.token, path as string)).toBe(404);
    expect(await readNarInfo(server.url, (await exchange(pr(8))).token, path as string)).toBe(404);
    expect(await readNarInfo(server.url, await server.readToken(['acme/*']), path as string)).toBe(404);
    // pull_request_target runs for forks with an ID token: it never gets a write slice.
    expect((await exchange(pr(7, 'pull_request_target'))).write).toBeNull();

    // The pull request's next job reads it, and Nix substitutes it.
    clock.set(clock.time + 6 * DAY);
    const later = await exchange(pr(7));
    expect(await readNarInfo(server.url, later.token, path as string)).toBe(200);
    const { closure } = await substituteFresh(server, path as string, later.token);
    expect(closure).toEqual([path]);

    // Reads do not extend it: 7 days after its last push it goes, NAR file and all.
    await server.collectGarbage();
    expect(await readNarInfo(server.url, later.token, path as string)).toBe(200);
    clock.set(clock.time + 1.5 * DAY);
    const report = await server.collectGarbage();
    expect(report.slices.find((slice) => slice.slice === 'acme/app/pr-7')?.removedPaths).toEqual([
      { storePath: path, reason: 'pr-ttl', bytes: expect.any(Number) },
    ]);
    expect(await readNarInfo(server.url, (await exchange(pr(7))).token, path as string)).toBe(404);
    expect(readdirSync(join(server.dataDir, 'nars'))).toEqual([]);
  });
});
