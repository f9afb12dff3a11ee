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

function leavesExpr(groups: PathGroup[], tag: string): string {
  const lists = groups.map(
    (group, index) => `(builtins.genList (leaf "g${index}" ${group.bytes}) ${group.count})`,
  );
  return `leaf = group: size: i: derivation {
      name = "sluice-bench-\${group}-\${toString i}";
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

/** Independent paths (no references between them): what one job builds and pushes. */
export async function buildPaths(groups: PathGroup[], machine?: NixMachine): Promise<Closure> {
  const paths = await build(`let ${leavesExpr(groups, salt())} in leaves`, machine);
  return { paths, bytes: totalBytes(groups) };
}

/** Leaves plus one root path that refers to all of them: a closure to substitute by its root. */
export async function buildFan(groups: PathGroup[], machine?: NixMachine): Promise<Closure> {
  const expression = `let ${leavesExpr(groups, salt())}
    root = derivation {
      name = "sluice-bench-root";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      args = [ "-c" "echo \${toString leaves} > $out" ];
    };
  in leaves ++ [ root ]`;
  const paths = await build(expression, machine);
  return { paths, root: paths[paths.length - 1]!, bytes: totalBytes(groups) };
}

/** Removes paths this benchmark built (never anything else), so repeated full runs do not fill the disk. */
export async function deletePaths(closure: Closure): Promise<void> {
  await nix('nix-store', ['--delete', ...closure.paths]).catch(() => undefined);
}
