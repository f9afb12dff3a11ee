/** The `sluice` command line. Subcommands are added by the server issue. */
import { runToken, TOKEN_USAGE } from './token.js';

export async function run(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === 'help') {
    process.stdout.write(`usage: sluice <command>\n  ${TOKEN_USAGE.replace(/^usage: /, '')}`);
    return;
  }
  if (command === 'token') {
    process.exitCode = await runToken(rest);
    return;
  }
  process.stderr.write(`sluice: unknown command '${command}'\n`);
  process.exitCode = 2;
}
