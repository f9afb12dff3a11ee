/** Helpers for the retention tests: a movable clock, random reference graphs built by real Nix, pushes. */
import type { Config } from '../../src/server/config/config-schema.js';
import { dataPaths } from '../../src/server/data-dir.js';
import type { PathEntry } from '../../src/server/retention/plan.js';
import { readSlice } from '../../src/server/retention/slice-rows.js';
import { createLogger } from '../../src/server/server-log.js';
import { openStorage } from '../../src/server/storage/open-storage.js';
import { makeNixMachine, nix, nixBuild, salt } from './nix.js';
import { writeNetrc } from './server.js';

export const DAY = 86_400_000;

/** A clock the test sets; the server and the collector read it. */
export class TestClock {
  constructor(public time = Date.now()) {}
  readonly now = (): number => this.time;
  set(time: number): void {
    this.time = time;
  }
}

/** Node i refers to the nodes in refs[i] (all < i); size bytes of random data each. */
export interface GraphShape {
  refs: number[][];
  sizes: number[];
}

/** Builds the graph with real Nix (fresh paths each call); returns the store paths by node. */
export async function buildGraph(shape: GraphShape): Promise<string[]> {
  const tag = salt();
  const bindings = shape.refs.map((refs, i) => {
    const echo = refs.map((j) => `\${p${j}}`).join(' ');
    return `p${i} = derivation {
      name = "sluice-gc-${i}"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${tag}";
      args = [ "-c" "echo '${echo}' > $out && /usr/bin/head -c ${shape.sizes[i]} /dev/urandom >> $out" ];
    };`;
  });
  const list = shape.refs.map((_, i) => `p${i}`).join(' ');
  return nixBuild(`let ${bindings.join('\n')} in [ ${list} ]`);
}

/** `nix copy` of these paths (and their closures) into the token's write slice. */
export async function nixCopy(url: string, token: string, paths: string[]): Promise<void> {
  const machine = makeNixMachine();
  const netrc = writeNetrc(machine.dir, token);
  await nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${url}?compression=none`, ...paths], {
    machine,
  });
}

/** The slice's rows as the collector reads them (through the real stores the server's config names). */
export async function sliceEntries(
  server: { config: Config; dataDir: string },
  slice: string,
): Promise<PathEntry[]> {
  const storage = await openStorage(
    server.config,
    dataPaths(server.dataDir),
    createLogger({ write: () => {} }),
  );
  try {
    return await readSlice(storage.meta, slice);
  } finally {
    await storage.close();
  }
}

/** GET <hash>.narinfo with a token: a read, which records the access. */
export async function readNarInfo(url: string, token: string, storePath: string): Promise<number> {
  const res = await fetch(`${url}/${storePath.slice(11, 43)}.narinfo`, {
    headers: { authorization: `Bearer ${token}` },
  });
  await res.arrayBuffer();
  return res.status;
}
