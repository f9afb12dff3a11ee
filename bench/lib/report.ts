/** The results table: one row per scenario, medians of the repetitions, ratio Sluice / baseline. */
import { median } from './stats.js';

/** Samples of one side, or why that side could not be measured in this run. */
export type Side = { samples: number[] } | { unavailable: string };

export interface Row {
  /** 'growth' rows describe how cost grows; they have no target. */
  group?: 'growth';
  scenario: string;
  unit: 's' | 'MB' | 'req/s' | 'ratio' | 'calls';
  sluice: Side;
  baseline?: Side;
  target: string;
  /** Decides whether the target is met from the Sluice median and the ratio (Sluice / baseline). */
  met?: (sluiceMedian: number, ratio: number | undefined) => boolean;
  note?: string;
}

/** CPU seconds of the Sluice processes (and, for lookups, the load generator) during one repetition. */
export interface CpuSample {
  wall: number;
  daemon: number;
  server: number;
  loadGenerator?: number;
}

/** A short account of CPU use in the median repetition: tells CPU-bound from waiting. */
export function cpuNote(cpu: CpuSample[], digits = 1): string | undefined {
  if (cpu.length === 0) return undefined;
  const mid = [...cpu].sort((a, b) => a.wall - b.wall)[Math.floor(cpu.length / 2)]!;
  const load =
    mid.loadGenerator === undefined ? '' : `, load generator ${mid.loadGenerator.toFixed(digits)} s CPU`;
  return `median run: ${mid.wall.toFixed(digits)} s wall; daemon ${mid.daemon.toFixed(digits)} s CPU, server ${mid.server.toFixed(digits)} s CPU${load}`;
}

export function sideMedian(side: Side | undefined): number | undefined {
  return side && 'samples' in side && side.samples.length > 0 ? median(side.samples) : undefined;
}

function formatNumber(value: number, unit: Row['unit']): string {
  if (unit === 'req/s') return `${Math.round(value).toLocaleString('en-US')} req/s`;
  if (unit === 'ratio') return value.toFixed(2);
  if (unit === 'calls') return `${value} calls`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

function formatSide(side: Side | undefined, unit: Row['unit']): string {
  if (side === undefined) return '—';
  if ('unavailable' in side) return `not available: ${side.unavailable}`;
  return formatNumber(median(side.samples), unit);
}

export function ratioOf(row: Row): number | undefined {
  const sluice = sideMedian(row.sluice);
  const baseline = sideMedian(row.baseline);
  return sluice !== undefined && baseline !== undefined && baseline > 0 ? sluice / baseline : undefined;
}

export function verdict(row: Row): 'met' | 'missed' | 'not measured' {
  const sluice = sideMedian(row.sluice);
  if (sluice === undefined || !row.met) return 'not measured';
  const ratio = ratioOf(row);
  if (row.baseline !== undefined && ratio === undefined) return 'not measured';
  return row.met(sluice, ratio) ? 'met' : 'missed';
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdownTable(rows: Row[]): string {
  const lines = ['| scenario | Sluice | baseline | ratio | target | result |', '|---|---|---|---|---|---|'];
  for (const row of rows) {
    const ratio = ratioOf(row);
    const cells = [
      row.scenario,
      formatSide(row.sluice, row.unit),
      formatSide(row.baseline, row.unit),
      ratio === undefined ? '—' : `${ratio.toFixed(2)}×`,
      row.target,
      verdict(row),
    ];
    lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** What goes into the JSON file: the samples, not only the medians. */
export function rowsAsJson(rows: Row[]): object[] {
  return rows.map((row) => ({
    scenario: row.scenario,
    unit: row.unit,
    sluice: row.sluice,
    baseline: row.baseline ?? null,
    sluiceMedian: sideMedian(row.sluice) ?? null,
    baselineMedian: sideMedian(row.baseline) ?? null,
    ratio: ratioOf(row) ?? null,
    target: row.target,
    result: verdict(row),
    note: row.note ?? null,
  }));
}

/** The rows' notes (where the time went, why a side is missing), as a list under the tables. */
export function notesMarkdown(rows: Row[]): string {
  const notes = rows.filter((row) => row.note).map((row) => `- ${row.scenario}: ${row.note}`);
  return notes.length > 0 ? ['Notes:', '', ...notes].join('\n') : '';
}
