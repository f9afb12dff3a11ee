/** `sluice pin add SLICE NAME PATH... [--ttl 1y]`, `sluice pin list [SLICE]`, `sluice pin rm SLICE NAME`. */
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { StorePath } from '../nix/store-path.js';
import { parseDuration } from '../server/config/units.js';
import { isSliceName, normalizeSliceName } from '../server/slices/slice-names.js';
import { PIN_NAME_PATTERN } from '../contracts/daemon-config.js';
import { withStores } from './stores.js';

export const PIN_USAGE = `usage: sluice pin add SLICE NAME PATH... [--ttl DURATION]
       sluice pin list [SLICE] [--json]
       sluice pin rm SLICE NAME
  (each also takes --data DIR and --config FILE)

A pin keeps store paths and their closures in a slice whatever max_age says (they still count
against max_size). Adding to an existing pin adds the paths and sets the new expiry.

  --ttl DURATION   the pin expires after this long (30d, 1y); default: never
`;

type Io = { stdout: Writable; stderr: Writable };

export async function runPin(argv: string[], io: Io = process): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ttl: { type: 'string' },
        json: { type: 'boolean' },
        data: { type: 'string' },
        config: { type: 'string' },
      },
      allowPositionals: true,
    });
  } catch (error) {
    io.stderr.write(`sluice pin: ${(error as Error).message}\n${PIN_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [action, ...args] = positionals;
  try {
    if (action === 'add' && args.length >= 3) return await add(values, args, io);
    if (action === 'list' && args.length <= 1) return await list(values, args[0], io);
    if (action === 'rm' && args.length === 2) return await remove(values, args, io);
  } catch (error) {
    io.stderr.write(`sluice pin: ${(error as Error).message}\n`);
    return 1;
  }
  io.stderr.write(`sluice pin: expected add, list or rm with their arguments\n${PIN_USAGE}`);
  return 2;
}

function sliceArgument(text: string): string {
  if (!isSliceName(text)) throw new Error(`'${text}' is not a slice name`);
  return normalizeSliceName(text);
}

function pinName(text: string): string {
  if (!PIN_NAME_PATTERN.test(text))
    throw new Error(`pin name '${text}' must be 1-100 letters, digits, . _ @ + -`);
  return text;
}

async function add(
  flags: { ttl?: string; data?: string; config?: string },
  [sliceText, nameText, ...pathTexts]: string[],
  io: Io,
): Promise<number> {
  const slice = sliceArgument(sliceText as string);
  const name = pinName(nameText as string);
  const paths = pathTexts.map((text) => StorePath.parse(text).toPath());
  const ttlSeconds = flags.ttl === undefined ? undefined : parseDuration(flags.ttl);
  return withStores(flags, async ({ meta }) => {
    const rows = await meta.findNarInfos(
      paths.map((path) => path.slice(11, 43)),
      (candidate) => candidate === slice,
    );
    const found = new Set(rows.map((row) => row.hashPart));
    const missing = paths.filter((path) => !found.has(path.slice(11, 43)));
    if (missing.length > 0) throw new Error(`not in slice '${slice}': ${missing.join(', ')}`);
    const now = Date.now();
    const expiresAt = ttlSeconds ? new Date(now + ttlSeconds * 1000) : null;
    await meta.putPin({ slice, name, storePaths: paths, createdAt: new Date(now), expiresAt });
    io.stdout.write(
      `pinned ${paths.length} path(s) in ${slice} as ${name}${expiresAt ? ` until ${expiresAt.toISOString()}` : ''}\n`,
    );
    return 0;
  });
}

async function list(
  flags: { json?: boolean; data?: string; config?: string },
  sliceText: string | undefined,
  io: Io,
) {
  const slice = sliceText === undefined ? undefined : sliceArgument(sliceText);
  const pins = await withStores(flags, ({ meta }) => meta.listPins(slice));
  if (!flags.json) io.stdout.write('slice\tname\tpaths\tcreated\texpires\n');
  for (const pin of pins) {
    io.stdout.write(
      flags.json
        ? `${JSON.stringify(pin)}\n`
        : `${pin.slice}\t${pin.name}\t${pin.storePaths.join(',')}\t${pin.createdAt.toISOString()}\t${pin.expiresAt?.toISOString() ?? 'never'}\n`,
    );
  }
  return 0;
}

async function remove(flags: { data?: string; config?: string }, [sliceText, name]: string[], io: Io) {
  const slice = sliceArgument(sliceText as string);
  const removed = await withStores(flags, ({ meta }) => meta.deletePin(slice, name as string));
  if (!removed) {
    io.stderr.write(`sluice pin: no pin '${name}' in slice '${slice}'\n`);
    return 1;
  }
  io.stdout.write(`removed pin ${name} from ${slice}\n`);
  return 0;
}
