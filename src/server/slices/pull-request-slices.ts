/**
 * Pull-request slices, `<slice>/pr-<number>` (docs/retention.md): written by that pull request's
 * jobs and read by them only, so no pattern grant or public pattern reaches into one.
 */
import { normalizeSliceName, sliceMatches } from './slice-names.js';

const PULL_REQUEST_SLICE = /^(.+)\/pr-(\d+)$/;

export function pullRequestSlice(base: string, number: string): string {
  return `${base}/pr-${number}`;
}

/** The slice a pull-request slice belongs to, or undefined for any other slice. */
export function pullRequestBase(name: string): string | undefined {
  return PULL_REQUEST_SLICE.exec(name)?.[1];
}

export function isPullRequestSlice(name: string): boolean {
  return PULL_REQUEST_SLICE.test(name);
}

/**
 * Whether a read grant (or a public pattern) covers `slice`. A pull-request slice only by its exact
 * name, which only that pull request's tokens carry: `acme/*` must not reach into `acme/app/pr-7`.
 */
export function readCovers(pattern: string, slice: string): boolean {
  return isPullRequestSlice(slice) ? normalizeSliceName(pattern) === slice : sliceMatches(pattern, slice);
}
