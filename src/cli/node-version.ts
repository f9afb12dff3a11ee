/**
 * Imported first by the CLI bundle: a Node without `node:sqlite` (Node 20) would otherwise die with
 * a stack trace while the bundle loads. Bundled modules run in import order, so this check runs
 * before any module that needs Node 24.
 */
export const NODE_NEEDED = 24;

const major = Number(process.versions.node.split('.')[0]);
if (major < NODE_NEEDED) {
  process.stderr.write(`sluice needs Node.js ${NODE_NEEDED} or later; this is Node.js ${process.version}\n`);
  process.exit(1);
}
