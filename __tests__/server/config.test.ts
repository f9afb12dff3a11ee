import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MAX_NAR_SIZE, defaultConfig, GITHUB_ISSUER } from '../../src/server/config/config-schema.js';
import { applyCliOverrides, loadConfig, parseConfig } from '../../src/server/config/server-config.js';
import { parseDuration, parseSize } from '../../src/server/config/units.js';
import { DEFAULT_UPLOAD_LIMITS } from '../../src/server/config/upload-limits.js';

describe('server config', () => {
  it('defaults every key: loopback 8080, ./sluice-data, 1h tokens, GitHub as issuer, the default policy', async () => {
    const expected = {
      listen: { host: '127.0.0.1', port: 8080 },
      data: './sluice-data',
      tokenTtlSeconds: 3600,
      maxReadTokenTtlSeconds: 90 * 86400,
      maxNarSize: DEFAULT_MAX_NAR_SIZE,
      rateLimits: {
        tokenExchanges: { count: 300, periodSeconds: 60 },
        failedAuth: { count: 30, periodSeconds: 60 },
      },
      trustProxy: [],
      uploads: DEFAULT_UPLOAD_LIMITS,
      issuers: [{ name: 'github', issuer: GITHUB_ISSUER, audience: 'sluice', allowInsecureHttp: false }],
      blobs: { type: 'fs' },
      keys: {},
      retention: {},
      gcIntervalSeconds: 3600,
      gcGraceSeconds: 3600,
    };
    expect(defaultConfig()).toEqual(expected);
    expect(parseConfig('')).toEqual(expected);
    expect(parseConfig('# nothing yet\n')).toEqual(expected);
    expect(await loadConfig()).toEqual(expected);
    expect(DEFAULT_MAX_NAR_SIZE).toBe(10 * 1024 ** 3);
  });

  it("parses the issue's example", () => {
    const config = parseConfig(`listen: 0.0.0.0:9000
data: /var/lib/sluice
token_ttl: 30m
max_nar_size: 2GiB
public_url: https://cache.example.com/
issuers:
  - name: github
    issuer: https://token.actions.githubusercontent.com
    audience: sluice
slices:
  - name: Acme/App
    public: false
    read:
      - { issuer: github, repository_owner_id: "1234" }
    write:
      - { issuer: github, repository_id: 5678, ref: refs/heads/main }
  - name: \${repository}
    write:
      - { event_name: [push, schedule] }
`);
    expect(config).toEqual({
      listen: { host: '0.0.0.0', port: 9000 },
      data: '/var/lib/sluice',
      tokenTtlSeconds: 1800,
      maxReadTokenTtlSeconds: 90 * 86400,
      maxNarSize: 2 * 1024 ** 3,
      rateLimits: {
        tokenExchanges: { count: 300, periodSeconds: 60 },
        failedAuth: { count: 30, periodSeconds: 60 },
      },
      trustProxy: [],
      uploads: DEFAULT_UPLOAD_LIMITS,
      publicUrl: 'https://cache.example.com',
      retention: {},
      gcIntervalSeconds: 3600,
      gcGraceSeconds: 3600,
      issuers: [{ name: 'github', issuer: GITHUB_ISSUER, audience: 'sluice', allowInsecureHttp: false }],
      slices: [
        {
          name: 'acme/app',
          public: false,
          read: [{ issuer: 'github', claims: { repository_owner_id: ['1234'] } }],
          write: [{ issuer: 'github', claims: { repository_id: ['5678'], ref: ['refs/heads/main'] } }],
        },
        {
          name: '${repository}',
          public: false,
          read: [],
          write: [{ claims: { event_name: ['push', 'schedule'] } }],
        },
      ],
      blobs: { type: 'fs' },
      keys: {},
    });
  });

  it('parses the upload limits, with units', () => {
    const config = parseConfig(`max_compression_ratio: 0
max_decompression_memory: 64MiB
max_concurrent_uploads: 4
max_concurrent_uploads_per_token: 2
body_idle_timeout: 1m
`);
    expect(config.uploads).toEqual({
      maxCompressionRatio: 0,
      maxDecompressionMemory: 64 * 1024 ** 2,
      maxConcurrentUploads: 4,
      maxConcurrentUploadsPerToken: 2,
      bodyIdleTimeoutMs: 60_000,
    });
    expect(parseConfig('max_concurrent_uploads: 4\n').uploads).toEqual({
      ...DEFAULT_UPLOAD_LIMITS,
      maxConcurrentUploads: 4,
    });
  });

  it.each([
    ['listen: 8080\n', /^sluice.yml:1: listen: "8080" is not HOST:PORT$/],
    [
      'max_concurrent_uploads: 0\n',
      /^sluice.yml:1: max_concurrent_uploads: 0 is not a whole number of at least 1$/,
    ],
    ['max_compression_ratio: -1\n', /max_compression_ratio: -1 is not a whole number of at least 0/],
    ['max_decompression_memory: lots\n', /max_decompression_memory: "lots" is not a size/],
    ['body_idle_timeout: soon\n', /body_idle_timeout: "soon" is not a duration/],
    ['listen: "[::1]:99999"\n', /listen: "\[::1\]:99999" is not HOST:PORT/],
    [
      'data: ./d\ntoken_ttl: 1 week\n',
      /^sluice.yml:2: token_ttl: "1 week" is not a duration such as 30s, 15m, 1h or 30d$/,
    ],
    ['token_ttl: 0s\n', /token_ttl: "0s" is not a duration/],
    ['max_nar_size: 10 GB\n', /max_nar_size: "10 GB" is not a size/],
    [
      'listen: 127.0.0.1:1\nlisten_port: 3\n',
      /^sluice.yml:2: listen_port: unknown key \(expected one of: listen, data/,
    ],
    ['token_ttl: 1h\ntoken_ttl: 2h\n', /^sluice.yml:2: Map keys must be unique/],
    ['issuers: []\n', /issuers: must list at least one issuer/],
    [
      'issuers:\n  - name: gh\n    issuer: http://127.0.0.1:1\n',
      /^sluice.yml:3: issuers\[0\].issuer: "http:\/\/127.0.0.1:1" must be https:\/\//,
    ],
    [
      'issuers:\n  - name: gh\n    issuer: https://a\n    jwks: https://a/keys\n',
      /^sluice.yml:4: issuers\[0\].jwks: unknown key/,
    ],
    [
      'issuers:\n  - { name: a, issuer: "https://a" }\n  - { name: a, issuer: "https://b" }\n',
      /issuers\[1\].name: duplicate issuer name 'a'/,
    ],
    [
      'issuers:\n  - { name: a, issuer: "https://a", allow_insecure_http: yes }\n',
      /allow_insecure_http: expected true or false/,
    ],
    ['slices: []\n', /slices: must list at least one slice \(omit the key for the default policy\)/],
    ['slices:\n  - name: a/b\n    reads: []\n', /^sluice.yml:3: slices\[0\].reads: unknown key/],
    ['slices:\n  - name: ../etc\n    public: true\n', /slices\[0\].name: '..\/etc' is not a slice name/],
    [
      'slices:\n  - name: "acme/*"\n    write: [{ repository: acme/app }]\n',
      /a slice with write rules needs a plain name/,
    ],
    ['slices:\n  - name: ${repository}\n    public: true\n', /a template slice cannot be public/],
    ['slices:\n  - name: a\n', /slices\[0\]: grants nothing/],
    [
      'slices:\n  - name: a\n    read:\n      - { issuer: github }\n',
      /^sluice.yml:4: slices\[0\].read\[0\]: a rule must test at least one claim/,
    ],
    [
      'slices:\n  - name: a\n    read:\n      - { issuer: gitlab, repository: x }\n',
      /read\[0\].issuer: unknown issuer 'gitlab' \(configured: github\)/,
    ],
    [
      'slices:\n  - name: a\n    read:\n      - { repository: [] }\n',
      /read\[0\].repository: an empty list matches nothing/,
    ],
    [
      'slices:\n  - name: a\n    read:\n      - { repository: { x: 1 } }\n',
      /read\[0\].repository: expected a non-empty string/,
    ],
    [
      'slices:\n  - { name: a, public: true }\n  - { name: A, public: true }\n',
      /slices\[1\].name: duplicate slice 'a'/,
    ],
    ['max_read_token_ttl: forever\n', /max_read_token_ttl: "forever" is not a duration/],
    [
      'rate_limits:\n  failed_auth: 10\n',
      /^sluice.yml:2: rate_limits.failed_auth: 10 is not a rate such as 60\/1m/,
    ],
    ['rate_limits:\n  logins: 10/1m\n', /^sluice.yml:2: rate_limits.logins: unknown key/],
    ['rate_limits: { token_exchanges: 0/1m }\n', /token_exchanges: "0\/1m" is not a rate/],
    ['trust_proxy: 10.0.0.1\n', /^sluice.yml:1: trust_proxy: expected a list/],
    ['trust_proxy: [10.0.0.0/33]\n', /trust_proxy: '10.0.0.0\/33' is not an IP address or CIDR range/],
    ['trust_proxy: [proxy.local]\n', /trust_proxy: 'proxy.local' is not an IP address/],
    ['- just a list\n', /^sluice.yml:1: \(top level\): expected a mapping$/],
    ['listen: [\n', /^sluice.yml:\d+: /],
  ])('refuses %j naming the key and the problem', (yaml, message) => {
    expect(() => parseConfig(yaml, 'sluice.yml')).toThrow(message);
  });

  it('reads rate limits (or off) and trusted proxies', () => {
    const config = parseConfig(
      'rate_limits:\n  token_exchanges: 10/30s\n  failed_auth: off\ntrust_proxy: [10.0.0.0/8, "::1"]\n',
    );
    expect(config.rateLimits).toEqual({ tokenExchanges: { count: 10, periodSeconds: 30 }, failedAuth: null });
    expect(config.trustProxy).toEqual(['10.0.0.0/8', '::1']);
  });

  it('requires rules to name their issuer when several are trusted', () => {
    const issuers = 'issuers:\n  - { name: a, issuer: "https://a" }\n  - { name: b, issuer: "https://b" }\n';
    expect(() => parseConfig(`${issuers}slices:\n  - { name: x, read: [{ repository: r }] }\n`, 'f')).toThrow(
      /slices\[0\].read\[0\]: name the issuer \(issuer: a \| b\)/,
    );
    expect(
      parseConfig(`${issuers}slices:\n  - { name: x, read: [{ issuer: b, repository: r }] }\n`).slices?.[0]
        ?.read,
    ).toEqual([{ issuer: 'b', claims: { repository: ['r'] } }]);
  });

  it('reads a file and reports its path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
    const path = join(dir, 'sluice.yml');
    writeFileSync(path, 'token_ttl: 2h\n');
    expect((await loadConfig(path)).tokenTtlSeconds).toBe(7200);
    writeFileSync(path, 'token_ttl: 2 hours\n');
    await expect(loadConfig(path)).rejects.toThrow(`${path}:1: token_ttl:`);
    await expect(loadConfig(join(dir, 'missing.yml'))).rejects.toThrow('cannot read the config file: ENOENT');
  });

  it('parses every complete YAML example of docs/policy.md', () => {
    const docs = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
    const examples = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] as string);
    const complete = examples.filter((yaml) => !yaml.includes('<rule>'));
    expect(complete.length).toBe(5);
    for (const yaml of complete)
      expect(parseConfig(yaml, 'docs/policy.md').slices?.length).toBeGreaterThan(0);
  });

  it('lets --listen and --data win over the file', () => {
    const config = parseConfig('listen: 127.0.0.1:1\ndata: /a\n');
    expect(applyCliOverrides(config, { listen: '[::1]:0', data: '/b' })).toMatchObject({
      listen: { host: '::1', port: 0 },
      data: '/b',
    });
    expect(applyCliOverrides(config, {})).toEqual(config);
    expect(() => applyCliOverrides(config, { listen: 'localhost' })).toThrow(
      '--listen: "localhost" is not HOST:PORT',
    );
  });

  it('parses durations and sizes', () => {
    expect([
      parseDuration('30s'),
      parseDuration('15m'),
      parseDuration('1h'),
      parseDuration('30d'),
      parseDuration(90),
    ]).toEqual([30, 900, 3600, 2592000, 90]);
    expect([parseSize('512MiB'), parseSize('1g'), parseSize(4096), parseSize('10GiB')]).toEqual([
      512 * 1024 ** 2,
      1024 ** 3,
      4096,
      10 * 1024 ** 3,
    ]);
    expect(() => parseDuration('-1h')).toThrow('is not a duration');
    expect(() => parseSize('1.5GiB')).toThrow('is not a size');
  });
});
