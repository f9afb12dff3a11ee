/**
 * Store paths for the scenarios, made by derivations that write random bytes (so compression
 * cannot flatter the figures), with a fresh salt every time so every run pushes new paths.
 */
import { nix, salt, type NixMachine } from '../../__tests__/support/nix.js';

/** `count` paths of `bytes` random bytes each. */
export interface PathGroup {
  count: number;
  bytes: number;
}

export interface Closure {
  /** Every path, root (if any) last. */
  paths: string[];
  /** A path whose closure is all of `paths` (only for `buildFan`). */
  root?: string;
  /** Total size of the random data. */
  bytes: number;
}

/** Nix 2.8 schedules thousands of goals in one nix-build slowly (5,000 took minutes): build in chunks. */
const CHUNK = 500;

/** A group cut into chunks of at most CHUNK paths, each knowing where its indices start. */
interface Chunk extends PathGroup {
  group: number;
  first: number;
}

function chunksOf(groups: PathGroup[]): Chunk[][] {
  const all: Chunk[] = [];
  groups.forEach((group, index) => {
    for (let first = 0; first < group.count; first += CHUNK) {
      all.push({ group: index, first, count: Math.min(CHUNK, group.count - first), bytes: group.bytes });
    }
  });
  // Pack chunks into builds of at most CHUNK paths.
  const builds: Chunk[][] = [];
  let current: Chunk[] = [];
  let size = 0;
  for (const chunk of all) {
    if (size + chunk.count > CHUNK && current.length > 0) {
      builds.push(current);
      current = [];
      size = 0;
    }
    current.push(chunk);
    size += chunk.count;
  }
  if (current.length > 0) builds.push(current);
  return builds;
}

function leavesExpr(chunks: Chunk[], tag: string, prefix: string): string {
  const lists = chunks.map(
    (chunk) =>
      `(builtins.genList (i: leaf "g${chunk.group}" ${chunk.bytes} (i + ${chunk.first})) ${chunk.count})`,
  );
  return `leaf = group: size: i: derivation {
      name = "${prefix}-\${group}-\${toString i}";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      salt = "${tag}";
      args = [ "-c" "/usr/bin/head -c \${toString size} /dev/urandom > $out" ];
    };
    leaves = ${lists.join(' ++ ')};`;
}

async function build(expression: string, machine?: NixMachine): Promise<string[]> {
  // Two cores: a few builders at once keep /dev/urandom and the disk busy without starving the rest.
  const out = await nix('nix-build', ['--no-out-link', '--max-jobs', '4', '--expr', expression], { machine });
  return out.trim().split('\n').filter(Boolean);
}

function totalBytes(groups: PathGroup[]): number {
  return groups.reduce((sum, group) => sum + group.count * group.bytes, 0);
}

/**
 * Independent paths (no references between them): what one job builds and pushes. Their names
 * start with `prefix`, which a job's push-filter can tell from other processes' paths.
 */
export async function buildPaths(
  groups: PathGroup[],
  machine?: NixMachine,
  prefix = 'sluice-bench',
): Promise<Closure> {
  const tag = salt();
  const paths: string[] = [];
  for (const chunks of chunksOf(groups))
    paths.push(...(await build(`let ${leavesExpr(chunks, tag, prefix)} in leaves`, machine)));
  return { paths, bytes: totalBytes(groups) };
}

/** Leaves plus one root path that refers to all of them: a closure to substitute by its root. */
export async function buildFan(
  groups: PathGroup[],
  machine?: NixMachine,
  prefix = 'sluice-bench',
): Promise<Closure> {
  const leaves = await buildPaths(groups, machine, prefix);
  // The root's builder mentions every leaf, so Nix finds them all as references.
  const expression = `derivation {
      name = "${prefix}-root";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      salt = "${salt()}";
      args = [ "-c" "echo ${leaves.paths.map((path) => `\${builtins.storePath "${path}"}`).join(' ')} > $out" ];
    }`;
  const [root] = await build(expression, machine);
  return { paths: [...leaves.paths, root!], root: root!, bytes: leaves.bytes };
}

/** Removes paths this benchmark built (never anything else), so repeated full runs do not fill the disk. */
export async function deletePaths(closure: Closure): Promise<void> {
  await nix('nix-store', ['--delete', ...closure.paths]).catch(() => undefined);
}
