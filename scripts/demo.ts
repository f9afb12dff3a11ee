/**
 * Sluice end to end on this machine: a server with its embedded defaults in a temp dir, trusting a
 * local stand-in for GitHub's OIDC issuer; the Action's bundled steps run as the runner runs them,
 * with real Nix in an isolated offline configuration. Job 1 builds a few derivations and pushes
 * them; job 2, on a store without them, substitutes everything and builds nothing.
 */
import { nix, randomChainExpr } from '../__tests__/support/nix.js';
import { buildActionBundles, Job, type StepResult } from '../__tests__/support/runner.js';
import { startTestServer } from '../__tests__/support/server.js';

const COUNT = 4;

/** The job summary (HTML, as GitHub renders it) as plain text for a terminal. */
function summaryText(summary: string): string {
  return summary
    .replace(/<h\d>(.*?)<\/h\d>/g, '\n## $1\n')
    .replace(/<tr>/g, '\n|')
    .replace(/<\/t[hd]>/g, ' |')
    .replace(/<li>/g, '\n- ')
    .replace(/<br>/g, '\n')
    .replace(/<summary>(.*?)<\/summary>/g, '\n▸ $1\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function check(step: string, result: StepResult): void {
  for (const warning of result.warnings) console.log(`  warning: ${warning}`);
  if (result.exitCode !== 0) throw new Error(`${step} failed (exit ${result.exitCode}):\n${result.log}`);
}

async function main(): Promise<void> {
  console.log('Bundling the Action (main, post, hook, proxy) from the sources…');
  const dist = buildActionBundles();
  const server = await startTestServer();
  console.log(`Sluice server at ${server.url} (data in ${server.dataDir}), signing as ${server.publicKey}`);
  const inputs = { server: server.url, listen: '127.0.0.1:0', 'upstream-caches': '' };
  // A chain of derivations, each referring to the one before, with 200 kB of random data each.
  const expression = randomChainExpr(COUNT, 200_000);
  let closure: string[] = [];
  try {
    console.log(`\n=== Job 1: build ${COUNT} derivations and push them ===`);
    const job1 = new Job({ dist, inputs, idTokenRequest: server.issuer.runner });
    check('job 1 main', await job1.runMain());
    const [top] = await job1.nixBuild(expression);
    closure = (await job1.run('nix-store', ['--query', '--requisites', top!])).trim().split('\n');
    console.log(`  built ${top} (closure of ${closure.length} paths)`);
    const post1 = await job1.runPost();
    check('job 1 post', post1);
    console.log(summaryText(post1.summary));

    // "A fresh runner": the demo's own paths leave the store, and job 2 gets a new Nix machine.
    await nix('nix-store', ['--delete', ...closure.reverse()]);
    console.log(`\n=== Job 2: the same build on a store without those ${closure.length} paths ===`);
    const job2 = new Job({ dist, inputs, idTokenRequest: server.issuer.runner });
    check('job 2 main', await job2.runMain());
    // --max-jobs 0: Nix may not build anything, only substitute.
    await job2.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', expression]);
    console.log('  nix-build finished without building anything (--max-jobs 0)');
    const post2 = await job2.runPost();
    check('job 2 post', post2);
    console.log(summaryText(post2.summary));
  } finally {
    await nix('nix-store', ['--delete', ...closure]).catch(() => undefined);
    await server.close();
  }
}

await main();
process.exit(0);
