/** The `sluice` command line. Subcommands are added by the server issue. */
export async function run(argv: string[]): Promise<void> {
  const [command] = argv;
  if (command === undefined || command === '--help' || command === 'help') {
    process.stdout.write('usage: sluice <command>\n');
    return;
  }
  process.stderr.write(`sluice: unknown command '${command}'\n`);
  process.exitCode = 2;
}
