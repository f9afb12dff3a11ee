/** The `sluice` command line: `serve`, `token create`, `audit`, `keys generate`, `gc`, `pin`, `slices`. */
import { AUDIT_USAGE, runAudit } from './audit-command.js';
import { GC_USAGE, runGc } from './gc.js';
import { KEYS_USAGE, runKeys } from './keys-command.js';
import { PIN_USAGE, runPin } from './pin.js';
import { runSlices, SLICES_USAGE } from './slices.js';
import { runServe, SERVE_USAGE } from './serve-command.js';
import { runToken, TOKEN_USAGE } from './token-command.js';

const COMMANDS: Record<string, { usage: string; run: (argv: string[]) => Promise<number> }> = {
  serve: { usage: SERVE_USAGE, run: runServe },
  token: { usage: TOKEN_USAGE, run: runToken },
  audit: { usage: AUDIT_USAGE, run: runAudit },
  keys: { usage: KEYS_USAGE, run: runKeys },
  gc: { usage: GC_USAGE, run: runGc },
  pin: { usage: PIN_USAGE, run: runPin },
  slices: { usage: SLICES_USAGE, run: runSlices },
};

const USAGE = `usage: sluice <command> [options]

commands:
  serve          run the cache server
  token create   print a read-only cache token (for people and machines)
  token list     list read tokens; token revoke ID: refuse one from now on
  audit          list accepted writes
  keys generate  write key files for replicas that share one signing key
  gc             collect garbage now (retention, pins, orphans); --dry-run shows what would go
  pin            pin store paths and their closures in a slice (add, list, rm)
  slices         list slices: size, paths, quota use, last push, pins

'sluice <command> --help' explains a command.
`;

export async function run(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`sluice: unknown command '${command}'\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(entry.usage);
    return;
  }
  process.exitCode = await entry.run(rest);
}
