/**
 * How the daemon says it is listening: `<stateDir>/ready.json` `{ pid, port }`, written then
 * renamed so a reader never sees half a file. The Action and the benchmark wait for it.
 */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const READY_FILE = 'ready.json';

export interface ReadyFile {
  pid: number;
  port: number;
}

export async function writeReadyFile(stateDir: string, ready: ReadyFile): Promise<void> {
  const path = join(stateDir, READY_FILE);
  const tmp = `${path}.${ready.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(ready));
  await rename(tmp, path);
}

/** The ready file's content, or undefined while there is none. */
export function readReadyFile(stateDir: string): ReadyFile | undefined {
  let text: string;
  try {
    text = readFileSync(join(stateDir, READY_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const json = JSON.parse(text) as Partial<ReadyFile>;
  if (typeof json.pid !== 'number' || typeof json.port !== 'number')
    throw new Error(`${READY_FILE} is not { pid, port }: ${text.slice(0, 100)}`);
  return { pid: json.pid, port: json.port };
}
