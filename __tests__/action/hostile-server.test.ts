/**
 * A server (or anyone on a plain-http path to it) that answers the exchange with a public key
 * carrying a newline must not get lines into nix.conf (issue 19, finding 7): the job stays green,
 * does not use the cache, and says why.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { checkPath, checkPublicKey, checkProxyUrl } from '../../src/action/nix-conf-values.js';
import { writeNixConf } from '../../src/action/nix-config.js';
import { makeNixMachine, nix } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';

const KEY = 'sluice-test-1:2Z6Zr4gvnL1lL9ZtcOQ8OTLnrtfl4FfKjRbNr/IMiJ4=';
const INJECTED = 'post-build-hook = /tmp/sluice-pwned.sh';

/**
 * Workflow commands a line of the step's log can carry: the main step logs the slices and expiry of
 * the grant, and a line of stdout that starts with `::` is a command to the runner (an annotation,
 * a mask that hides any text of the log, `::stop-commands::`…).
 */
const COMMANDS: Record<string, Record<string, unknown>> = {
  'read-command': { read: ['acme/app\n::error title=Sluice::pwned-by-read'] },
  'write-command': { write: 'acme/app\n::add-mask::Sluice' },
  // V8's Date.parse skips a parenthesised comment, newlines and all.
  'expiry-command': { expires_at: '2099-01-01 (\n::error::pwned-by-expiry)' },
};

let dist: string;
let issuer: OidcIssuer;
let hostile: Server;
let hostileUrl: string;

// Bundling the Action from the sources takes minutes on a loaded machine.
const BUNDLE_TIMEOUT_MS = 600_000;

beforeAll(async () => {
  dist = buildActionBundles();
  issuer = await startOidcIssuer();
  // Answers every exchange with a grant whose key smuggles in a nix.conf line; under the path
  // prefixes of COMMANDS, a valid key but a slice name or expiry that smuggles in a workflow command.
  hostile = createServer((req, res) => {
    req.resume();
    const attack = COMMANDS[(req.url ?? '').split('/')[1] ?? ''];
    const body = JSON.stringify({
      token: 'hostile-cache-token-0123456789',
      expires_at: new Date(Date.now() + 3600_000).toISOString(),
      read: ['acme/app'],
      write: 'acme/app',
      public_keys: [attack ? KEY : `${KEY}\n${INJECTED}`],
      cache_url: 'http://127.0.0.1:1',
      ...attack,
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
  hostileUrl = `http://127.0.0.1:${(hostile.address() as { port: number }).port}`;
}, BUNDLE_TIMEOUT_MS);
afterAll(async () => {
  await new Promise((resolve) => hostile?.close(resolve));
  await issuer?.close();
});

describe('a server answering the exchange with a poisoned key', () => {
  it('gets nothing into nix.conf; the job stays green and the summary says why', async () => {
    const job = new Job({
      dist,
      inputs: { server: hostileUrl, 'upstream-caches': '' },
      idTokenRequest: issuer.runner,
    });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    const conf = join(job.machine.env.XDG_CONFIG_HOME!, 'nix', 'nix.conf');
    if (existsSync(conf)) expect(readFileSync(conf, 'utf8')).not.toContain('pwned');
    const config = JSON.parse(
      await nix('nix', ['show-config', '--json'], { machine: job.machine, env: job.env }),
    ) as Record<string, { value: unknown }>;
    expect(config['post-build-hook']!.value).toBe('');
    expect(job.exported).toEqual({});
    expect((job.savedState() as { daemon?: unknown }).daemon).toBeUndefined();
    expect(main.warnings.join('\n')).toMatch(
      /does not use the cache in this job: .*is not a Nix public key \(name:base64 of a 32-byte ed25519 key\)/,
    );

    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toContain('is not a Nix public key');
  }, 120_000);
});

describe('a server answering the exchange with workflow commands in its slices or expiry', () => {
  it.each(Object.keys(COMMANDS))(
    '%s: no command reaches the runner; the job goes on without the cache',
    async (prefix) => {
      const job = new Job({
        dist,
        inputs: { server: `${hostileUrl}/${prefix}/`, 'upstream-caches': '' },
        idTokenRequest: issuer.runner,
      });
      const main = await job.runMain();
      expect(main.exitCode).toBe(0);
      expect(main.errors).toEqual([]);
      expect([...job.secrets]).not.toContain('Sluice');
      expect(main.rawLog).not.toMatch(/^::(error|add-mask)[^\n]*(pwned|::Sluice)/m);
      expect(main.warnings.join('\n')).toMatch(
        /the token exchange answered an? (slice|expiry) that is not one/,
      );
      expect(job.exported).toEqual({});
      expect((job.savedState() as { daemon?: unknown }).daemon).toBeUndefined();
      const post = await job.runPost();
      expect(post.exitCode).toBe(0);
    },
    120_000,
  );
});

describe('values bound for nix.conf', () => {
  it('takes only name:base64 of 32 bytes as a key', () => {
    expect(checkPublicKey(KEY)).toBe(KEY);
    for (const bad of [
      `${KEY}\n${INJECTED}`,
      `${KEY} extra`,
      `${KEY}#`,
      'sluice-test-1:AAAA',
      `sluice test:${KEY.split(':')[1]}`,
      `:${KEY.split(':')[1]}`,
      // 32 bytes, but not canonical base64 (the last character's spare bits set).
      `k:${KEY.split(':')[1]!.slice(0, 42)}5=`,
    ]) {
      expect(() => checkPublicKey(bad)).toThrow('is not a Nix public key');
    }
  });

  it('takes only loopback proxy URLs with a secret path, and plain paths', () => {
    const secret = 'a'.repeat(43);
    expect(checkProxyUrl(`http://127.0.0.1:4000/${secret}`)).toContain(secret);
    expect(() => checkProxyUrl(`http://127.0.0.1:4000/${secret}\n${INJECTED}`)).toThrow('not a loopback');
    expect(() => checkProxyUrl(`http://example.com:4000/${secret}`)).toThrow('not a loopback');
    expect(() => checkProxyUrl('http://127.0.0.1:4000')).toThrow('not a loopback');
    expect(checkPath('/home/runner/work/_temp/sluice-x/hook.sh', 'the hook')).toBeTruthy();
    for (const bad of [
      '/tmp/a b/hook.sh',
      '/tmp/x\npost-build-hook = /y',
      '/tmp/#x',
      'rel/hook.sh',
      '/tmp/../x',
    ]) {
      expect(() => checkPath(bad, 'the post-build hook')).toThrow('cannot go into nix.conf');
    }
  });

  it('refuses to write a block with a bad value, leaving nix.conf as it was', async () => {
    const machine = makeNixMachine();
    const file = join(machine.dir, 'nix.conf');
    await expect(
      writeNixConf(file, { substituterFile: '/tmp/sub.conf', publicKeys: [`${KEY}\n${INJECTED}`] }),
    ).rejects.toThrow('is not a Nix public key');
    await expect(
      writeNixConf(file, { substituterFile: '/tmp/sub.conf', publicKeys: [KEY], postBuildHook: '/tmp/a b' }),
    ).rejects.toThrow('cannot go into nix.conf');
    expect(existsSync(file)).toBe(false);
  });
});
