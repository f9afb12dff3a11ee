/** Single byte ranges (`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`), which is what download tools ask for. */
import { HttpError } from '../../contracts/http-error.js';
import type { ByteRange } from '../storage/blob-store.js';

/** The range to send, or null for the whole body (no header, or several ranges, which we may ignore). */
export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return null;
  const [, first, last] = match as unknown as [string, string, string];
  let start: number;
  let end: number;
  if (first === '') {
    if (last === '') return null;
    start = Math.max(0, size - Number(last));
    end = size - 1;
  } else {
    start = Number(first);
    end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  }
  if (start > end || start >= size) {
    throw new HttpError(416, `range ${header} is outside the ${size} bytes of the file`, 'bad_range', {
      'content-range': `bytes */${size}`,
    });
  }
  return { start, end };
}
