import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { Hash } from '../../src/nix/hash.js';
import { digestNarFile, hashNar } from './nar-digest.js';
import {
  NARINFO_MAX_BYTES,
  NarInfoError,
  narInfoHashPart,
  parseNarInfo,
  serializeNarInfo,
  type NarInfo,
} from '../../src/nix/narinfo.js';
import { nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { copyToFileCache, hashPartOf, pathInfo, readNarInfos, removeFileCaches } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sluice-narinfo-'));
let chain: string[] = []; // [bottom, top]: top refers to bottom, both have a deriver
let added = ''; // `nix-store --add`: no deriver, no references, content-addressed (CA field)

beforeAll(async () => {
  const [top] = await nixBuild(randomChainExpr(2, 4096));
  chain = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
  const file = join(work, 'added-file');
  writeFileSync(file, `sluice ${Math.random()}\n`);
  added = (await nix('nix-store', ['--add', file])).trim();
});

afterAll(async () => {
  removeFileCaches();
  rmSync(work, { recursive: true, force: true });
  await nix('nix-store', ['--delete', ...chain.reverse(), added]).catch(() => undefined);
});

describe('narinfo as nix copy writes it', () => {
  it.each(['xz', 'zstd', 'none'])(
    'compression=%s: round-trips byte for byte and matches nix path-info',
    async (compression) => {
      const paths = [...chain, added];
      const cache = await copyToFileCache(paths, `compression=${compression}`);
      const infos = readNarInfos(cache);
      expect(infos.size).toBe(paths.length);
      for (const pi of await pathInfo(paths)) {
        const text = infos.get(hashPartOf(pi.path))!;
        const info = parseNarInfo(text);
        expect(serializeNarInfo(info)).toBe(text);
        expect(info.storePath).toBe(pi.path);
        expect(narInfoHashPart(info)).toBe(hashPartOf(pi.path));
        expect(info.compression).toBe(compression);
        expect(info.narHash.toSRI()).toBe(pi.narHash);
        expect(info.narSize).toBe(pi.narSize);
        expect(info.references.map((r) => `/nix/store/${r}`)).toEqual(pi.references);
        expect(info.deriver && `/nix/store/${info.deriver}`).toBe(pi.deriver);

        // The NAR file beside it: our streaming digests equal what Nix wrote.
        const narFile = join(cache, info.url);
        expect(await hashNar(createReadStream(narFile), info.compression)).toEqual({
          narHash: info.narHash,
          narSize: info.narSize,
        });
        const sink = new Writable({ write: (_c, _e, cb) => cb() });
        const digest = await digestNarFile(createReadStream(narFile), info.compression, sink);
        expect(digest.fileHash.equals(info.fileHash!)).toBe(true);
        expect(digest.fileSize).toBe(info.fileSize);
        expect(info.url).toBe(
          `nar/${digest.fileHash.nix32}.nar${{ xz: '.xz', zstd: '.zst', none: '' }[compression]}`,
        );
      }
      // Both kinds of path occur: with references and deriver, and with neither (but a CA field).
      const top = parseNarInfo(infos.get(hashPartOf(chain.at(-1)!))!);
      expect(top.references).toHaveLength(1);
      expect(top.deriver).toMatch(/\.drv$/);
      const plain = infos.get(hashPartOf(added))!;
      expect(plain).toContain('References: \n');
      expect(parseNarInfo(plain).references).toEqual([]);
      expect(parseNarInfo(plain)).not.toHaveProperty('deriver');
      expect(parseNarInfo(plain).ca).toMatch(/^fixed:r:sha256:/);
    },
  );
});

describe('narinfo parse errors name the problem', () => {
  const good = [
    'StorePath: /nix/store/l74iprxx1nl7ni75j8rhax3368zxgkzn-chain-b',
    'URL: nar/0acnmqax6s17nkwbbb4gsv0q60nlir9wdpp0ppb16h0vmfd2yrl5.nar.xz',
    'Compression: xz',
    'FileHash: sha256:0acnmqax6s17nkwbbb4gsv0q60nlir9wdpp0ppb16h0vmfd2yrl5',
    'FileSize: 252',
    'NarHash: sha256:09cwn1zyb7xq8vmm9645hyjnryr6q4g6y5rzlrrwp0mlzdbjy3aq',
    'NarSize: 544',
    'References: g43v7dns8xpkfwl4vi2015l6z8l68ggd-chain-a',
    'Deriver: nsa5833il4ch58r6i9cxh1zsbjfbgkj3-chain-b.drv',
    'Sig: test-cache-1:UrOr8QHs66VQ1KeHGQnovowhqFDbEgJlSOvZLDQsbNYzPQim3IvCEbmLWI5LUfmGj/V9OIzEY9u9EjORMxr9DQ==',
  ];
  const text = (lines: string[]) => lines.join('\n') + '\n';
  const replace = (key: string, line: string | null) =>
    text(good.flatMap((l) => (l.startsWith(`${key}: `) ? (line === null ? [] : [line]) : [l])));

  it('parses the example and keeps unknown fields in order', () => {
    const withExtra = text([...good, 'Future-Field: some value', 'Other: x']);
    const info = parseNarInfo(withExtra);
    expect(info.extra).toEqual([
      ['Future-Field', 'some value'],
      ['Other', 'x'],
    ]);
    expect(serializeNarInfo(info)).toBe(withExtra);
  });

  const cases: [string, string, RegExp][] = [
    ['duplicate field', text([...good, 'NarSize: 544']), /duplicate field 'NarSize'/],
    ['duplicate unknown field', text([...good, 'X: 1', 'X: 2']), /duplicate field 'X'/],
    ['missing StorePath', replace('StorePath', null), /missing required field 'StorePath'/],
    ['missing URL', replace('URL', null), /missing required field 'URL'/],
    ['missing NarHash', replace('NarHash', null), /missing required field 'NarHash'/],
    ['missing NarSize', replace('NarSize', null), /missing required field 'NarSize'/],
    ['empty URL', replace('URL', 'URL: '), /URL is empty/],
    ['unknown Compression', replace('Compression', 'Compression: lzma9'), /unknown Compression 'lzma9'/],
    ['non-numeric NarSize', replace('NarSize', 'NarSize: 5k'), /NarSize '5k' is not a non-negative integer/],
    ['negative NarSize', replace('NarSize', 'NarSize: -544'), /NarSize '-544' is not a non-negative integer/],
    ['negative FileSize', replace('FileSize', 'FileSize: -1'), /FileSize '-1' is not a non-negative integer/],
    ['huge FileSize', replace('FileSize', 'FileSize: 99999999999999999999'), /FileSize '9+' is too large/],
    ['zero NarSize', replace('NarSize', 'NarSize: 0'), /NarSize is 0/],
    [
      'bad NarHash',
      replace('NarHash', 'NarHash: sha256:xyz'),
      /NarHash: 'sha256:xyz' is not a valid sha256 hash/,
    ],
    [
      'md5 NarHash',
      replace('NarHash', `NarHash: ${Hash.of('md5', 'x').toString()}`),
      /NarHash 'md5:.*' is not a sha256 hash/,
    ],
    [
      'full path reference',
      replace('References', 'References: /nix/store/g43v7dns8xpkfwl4vi2015l6z8l68ggd-chain-a'),
      /References: .* is not a store path base name/,
    ],
    [
      'bad reference',
      replace('References', 'References: g43v7dns8xpkfwl4vi2015l6z8l68ggd-a@b'),
      /References: .*the character '@'/,
    ],
    [
      'reference with a bad hash',
      replace('References', 'References: e43v7dns8xpkfwl4vi2015l6z8l68ggd-chain-a'),
      /References: .* is not nix32/,
    ],
    ['bad Deriver', replace('Deriver', 'Deriver: x.drv'), /Deriver: 'x.drv' is not a store path base name/],
    [
      'StorePath outside the store',
      replace('StorePath', 'StorePath: /gnu/store/l74iprxx1nl7ni75j8rhax3368zxgkzn-chain-b'),
      /StorePath: path '\/gnu\/store\/.*' is not in the store '\/nix\/store'/,
    ],
    [
      'StorePath with a bad name',
      replace('StorePath', 'StorePath: /nix/store/l74iprxx1nl7ni75j8rhax3368zxgkzn-a b'),
      /StorePath: .*the character ' '/,
    ],
    ['line without ": "', text([...good, 'NoSeparator']), /line 11 is not 'Key: value': 'NoSeparator'/],
    ['line with ":" but no space', text([...good, 'Key:value']), /line 11 is not 'Key: value'/],
    ['empty line', text([good[0]!, '', ...good.slice(1)]), /line 2 is not 'Key: value'/],
    ['key with spaces', text([...good, 'Bad Key: v']), /line 11 is not 'Key: value'/],
    ['no final newline', text(good).slice(0, -1), /does not end with a newline/],
    ['malformed Sig', text([...good, 'Sig: nocolon']), /Sig 'nocolon' is not 'keyname:base64'/],
    [
      'input over the size limit',
      text([...good, `Padding: ${'x'.repeat(NARINFO_MAX_BYTES)}`]),
      /narinfo is larger than 1048576 bytes/,
    ],
  ];

  it.each(cases)('%s', (_name, input, message) => {
    expect(() => parseNarInfo(input)).toThrow(NarInfoError);
    expect(() => parseNarInfo(input)).toThrow(message);
  });

  it('honours a smaller size limit and another store dir', () => {
    expect(() => parseNarInfo(text(good), { maxBytes: 100 })).toThrow('narinfo is larger than 100 bytes');
    const other = replace('StorePath', 'StorePath: /foo/store/l74iprxx1nl7ni75j8rhax3368zxgkzn-chain-b');
    expect(parseNarInfo(other, { storeDir: '/foo/store' }).storePath).toMatch(/^\/foo\/store\//);
    expect(() => parseNarInfo(other)).toThrow(/not in the store '\/nix\/store'/);
  });

  it('reads unknown-deriver as no deriver, like Nix', () => {
    expect(parseNarInfo(replace('Deriver', 'Deriver: unknown-deriver')).deriver).toBeUndefined();
  });

  it('refuses to serialize values that would inject lines', () => {
    const info = parseNarInfo(text(good));
    expect(() => serializeNarInfo({ ...info, system: 'x86_64-linux\nNarSize: 1' })).toThrow(
      "field 'System' contains a newline",
    );
    expect(() => serializeNarInfo({ ...info, references: ['a b'] })).toThrow(
      "References: 'a b' is not a store path base name",
    );
    expect(() => serializeNarInfo({ ...info, extra: [['Bad Key', 'v']] })).toThrow(
      "cannot write extra field 'Bad Key'",
    );
    expect(() => serializeNarInfo({ ...info, extra: [['NarSize', '1']] })).toThrow(
      "cannot write extra field 'NarSize'",
    );
  });
});

describe('narinfo properties', () => {
  const nix32 = (length: number) =>
    fc
      .array(fc.constantFrom(...'0123456789abcdfghijklmnpqrsvwxyz'), { minLength: length, maxLength: length })
      .map((a) => a.join(''));
  const name = fc
    .array(fc.constantFrom(...'abcXYZ019+-._?='), { minLength: 1, maxLength: 40 })
    .map((a) => a.join(''))
    .filter((n) => !/^\.{1,2}(-|$)/.test(n));
  const baseName = fc.tuple(nix32(32), name).map(([h, n]) => `${h}-${n}`);
  const sha256 = fc
    .uint8Array({ minLength: 32, maxLength: 32 })
    .map((b) => new Hash('sha256', Buffer.from(b)));
  const sig = fc
    .tuple(fc.stringMatching(/^[a-z0-9.-]{1,20}$/), fc.uint8Array({ minLength: 64, maxLength: 64 }))
    .map(([k, b]) => `${k}:${Buffer.from(b).toString('base64')}`);
  const value = fc.stringMatching(/^[ -~]{0,40}$/);
  const narInfo: fc.Arbitrary<NarInfo> = fc
    .record(
      {
        storePath: baseName.map((b) => `/nix/store/${b}`),
        compression: fc.constantFrom('xz', 'zstd', 'none', 'bzip2', 'br'),
        fileHash: sha256,
        fileSize: fc.nat(),
        narHash: sha256,
        narSize: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        references: fc.uniqueArray(baseName, { maxLength: 6 }).map((r) => r.sort()),
        deriver: baseName.map((b) => `${b}.drv`),
        system: fc.constantFrom('x86_64-linux', 'aarch64-darwin'),
        sigs: fc.array(sig, { maxLength: 3 }),
        ca: fc.constant('fixed:r:sha256:11v5kg329rkz9k2sahqnqcjyiv81dxx6s7pfmcjdprg2wr9ach0h'),
        extra: fc.uniqueArray(fc.tuple(fc.stringMatching(/^X-[A-Za-z0-9-]{1,10}$/), value), {
          maxLength: 3,
          selector: ([k]) => k,
        }),
      },
      { requiredKeys: ['storePath', 'compression', 'narHash', 'narSize', 'references', 'sigs', 'extra'] },
    )
    .map((r) => ({ ...r, url: `nar/${(r.fileHash ?? r.narHash).nix32}.nar` }));

  it('parse(serialize(x)) == x and serialize(parse(s)) == s', () => {
    fc.assert(
      fc.property(narInfo, (info) => {
        const text = serializeNarInfo(info);
        const parsed = parseNarInfo(text);
        expect(parsed).toEqual(info);
        expect(serializeNarInfo(parsed)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });
});
