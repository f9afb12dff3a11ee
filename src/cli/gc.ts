/** `sluice gc [--slice NAME] [--dry-run] [--json]`: collects now and prints what went and why. */
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { normalizeSliceName } from '../server/slices/slice-names.js';
import { collectGarbage } from '../server/retention/collector.js';
import { formatGcReport } from '../server/retention/report.js';
import { withStores } from './stores.js';

export const GC_USAGE = `usage: sluice gc [--slice NAME] [--dry-run] [--json] [--data DIR] [--config FILE]

Applies the configured retention now (the server also does, every gc_interval): per slice, removes
paths past max_age and least recently used paths beyond max_size, never a pinned closure nor a path
another kept path of the slice refers to; then NAR files no narinfo uses (and orphan uploads) older
than gc_grace. Prints, per slice, what is kept and every removed path with its reason.

  --slice NAME   only this slice (NAR files no slice uses are still collected)
  --dry-run      change nothing; print what a run now would remove
  --json         the report as JSON
`;

export async function runGc(
  argv: string[],
  io: { stdout: Writable; stderr: Writable } = process,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        slice: { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        data: { type: 'string' },
        config: { type: 'string' },
      },
      allowPositionals: false,
    }));
  } catch (error) {
    io.stderr.write(`sluice gc: ${(error as Error).message}\n${GC_USAGE}`);
    return 2;
  }
  try {
    const report = await withStores(values, (stores) =>
      collectGarbage(stores, {
        dryRun: values['dry-run'] === true,
        ...(values.slice ? { slice: normalizeSliceName(values.slice) } : {}),
      }),
    );
    io.stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatGcReport(report));
    return report.skipped ? 1 : 0;
  } catch (error) {
    io.stderr.write(`sluice gc: ${(error as Error).message}\n`);
    return 1;
  }
}
