/** `sluice slices [--json]`: each slice's size, path count, quota use, last push and pins. */
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { SLICE_COLUMNS, sliceRow, summarizeSlices } from '../server/retention/report.js';
import { withStores } from './stores.js';

export const SLICES_USAGE = `usage: sluice slices [--json] [--data DIR] [--config FILE]

Lists every slice holding paths or pins: paths, size of its NAR files, use of its max_size, last
push, pin names (tab-separated columns, or one JSON object per line).
`;

export async function runSlices(
  argv: string[],
  io: { stdout: Writable; stderr: Writable } = process,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean' }, data: { type: 'string' }, config: { type: 'string' } },
      allowPositionals: false,
    }));
  } catch (error) {
    io.stderr.write(`sluice slices: ${(error as Error).message}\n${SLICES_USAGE}`);
    return 2;
  }
  try {
    const summaries = await withStores(values, ({ meta, config }) => summarizeSlices(meta, config));
    if (!values.json) io.stdout.write(`${SLICE_COLUMNS.join('\t')}\n`);
    for (const summary of summaries)
      io.stdout.write(values.json ? `${JSON.stringify(summary)}\n` : `${sliceRow(summary).join('\t')}\n`);
    return 0;
  } catch (error) {
    io.stderr.write(`sluice slices: ${(error as Error).message}\n`);
    return 1;
  }
}
