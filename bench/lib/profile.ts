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

/** The top functions by self time of one profile, as markdown lines. */
export function summariseProfile(file: string, top = 12): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const totalSamples = profile.samples.length || 1;
  const selfSamples = new Map<string, number>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${basename(url)}:${lineNumber + 1}` : 'native';
    const key = `${functionName || '(anonymous)'} (${where})`;
    selfSamples.set(key, (selfSamples.get(key) ?? 0) + (node.hitCount ?? 0));
  }
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  return [
    `${basename(file)}: ${seconds.toFixed(1)} s profiled`,
    ...[...selfSamples.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, samples]) => `  ${((samples / totalSamples) * 100).toFixed(1).padStart(5)}%  ${name}`),
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
