/** The `sluice` command line: `serve`, `token create`, `audit`. */
import { AUDIT_USAGE, runAudit } from './audit-command.js';
import { runServe, SERVE_USAGE } from './serve-command.js';
import { runToken, TOKEN_USAGE } from './token-command.js';

const COMMANDS: Record<string, { usage: string; run: (argv: string[]) => Promise<number> }> = {
  serve: { usage: SERVE_USAGE, run: runServe },
  token: { usage: TOKEN_USAGE, run: runToken },
  audit: { usage: AUDIT_USAGE, run: runAudit },
};

const USAGE = `usage: sluice <command> [options]

commands:
  serve          run the cache server
  token create   print a read-only cache token (for people and machines)
  token list     list read tokens; token revoke ID: refuse one from now on
  audit          list accepted writes

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
