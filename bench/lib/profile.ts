/**
 * `--profile`: the Sluice processes run with V8's sampling profiler (`--cpu-prof`), and each
 * profile is summarised as the functions with the most self time, to tell where a push or a lookup
 * spends its CPU (compression, hashing, HTTP, logging, …).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

/** Node flags that make a process write a CPU profile into `dir` when it exits. */
export function profilingFlags(dir: string | undefined): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? `${basename(url)}:${lineNumber + 1}` : 'native';
  return `${functionName || '(anonymous)'} (${where})`;
}

function percentLines(samples: Map<string, number>, total: number, top: number): string[] {
  return [...samples.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, count]) => `  ${((count / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
}

/**
 * One profile: the functions with the most self time, then Sluice's own named functions (frames
 * of the bundle) by inclusive time, which is where "verifying the token" or "signing the narinfo"
 * shows up as a whole.
 */
export function summariseProfile(file: string, top = 12): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const total = profile.samples.length || 1;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  for (const node of profile.nodes)
    self.set(frameName(node), (self.get(frameName(node)) ?? 0) + (node.hitCount ?? 0));

  // Inclusive samples per node, then per function, counting a function once per call stack.
  const inclusiveOf = new Map<number, number>();
  const inclusive = (id: number): number => {
    const known = inclusiveOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id)!;
    const sum =
      (node.hitCount ?? 0) + (node.children ?? []).reduce((acc, child) => acc + inclusive(child), 0);
    inclusiveOf.set(id, sum);
    return sum;
  };
  const own = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>): void => {
    const node = byId.get(id)!;
    const name = frameName(node);
    const ours = node.callFrame.url.endsWith('/index.js') && node.callFrame.functionName !== '';
    const counted = ours && !onStack.has(name);
    if (counted) own.set(name, (own.get(name) ?? 0) + inclusive(id));
    const next = counted ? new Set(onStack).add(name) : onStack;
    for (const child of node.children ?? []) walk(child, next);
  };
  walk(profile.nodes[0]!.id, new Set());

  const seconds = (profile.endTime - profile.startTime) / 1e6;
  return [
    `${basename(file)}: ${seconds.toFixed(1)} s profiled`,
    'self time:',
    ...percentLines(self, total, top),
    'inclusive time, bundle functions:',
    ...percentLines(own, total, top),
  ];
}

/** Summaries of every profile written into `dir` (the file names carry the process id). */
export function summariseProfiles(dir: string, labels: Map<number, string>): string {
  const files = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'));
  return files
    .map((name) => {
      const pid = Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(name)?.[1]);
      return [
        `### ${labels.get(pid) ?? `pid ${pid}`}`,
        '',
        '```',
        ...summariseProfile(join(dir, name)),
        '```',
      ].join('\n');
    })
    .join('\n\n');
}
