// Checks src/'s imports against its floors (docs/architecture.md, "Rooms"): no import circle, no
// arrow up a floor, no arrow between rooms on the same floor. Run by `npm run lint`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Floors of the parts, lowest first; a part imports only parts on lower floors. */
const PARTS = { nix: 0, contracts: 1, server: 2, proxy: 2, action: 2, cli: 3, entrypoints: 4 };
/** Floors of the rooms inside a part, lowest first (a file directly in the part is named by its base name). */
const ROOMS = {
  server: {
    slices: 0,
    metrics: 0,
    'server-log': 0,
    'data-dir': 0,
    'signing-key': 0,
    config: 1,
    storage: 2,
    exchange: 3,
    retention: 3,
    cache: 4,
    http: 5,
    index: 6,
    audit: 6,
    keys: 5,
  },
  proxy: { report: 0, upstream: 1, pull: 2, push: 2, pack: 3, runtime: 4 },
};

const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (path.endsWith('.ts')) files.push(relative('.', path));
  }
};
walk('src');

function place(file) {
  const [, part, room] = file.split('/');
  const rooms = ROOMS[part];
  if (!rooms) return { part, room: part, floor: PARTS[part] };
  const name = room.replace(/\.ts$/, '');
  if (!(name in rooms)) throw new Error(`${file}: room '${name}' has no floor in scripts/check-layers.js`);
  return { part, room: name, floor: rooms[name] };
}

const problems = [];
const graph = new Map();
for (const file of files) {
  const targets = [];
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = relative('.', resolve(dirname(file), match[1])).replace(/\.js$/, '.ts');
    targets.push(target);
    const from = place(file);
    const to = place(target);
    if (from.part !== to.part) {
      if (!(PARTS[to.part] < PARTS[from.part]))
        problems.push(`${file} → ${target}: ${from.part} may not import ${to.part}`);
    } else if (from.room !== to.room && !(to.floor < from.floor)) {
      problems.push(`${file} → ${target}: ${from.part}/${from.room} may not import ${to.part}/${to.room}`);
    }
  }
  graph.set(file, targets);
}

// Circles: a depth-first search that reports each back edge's loop.
const state = new Map();
const stack = [];
const visit = (file) => {
  state.set(file, 'open');
  stack.push(file);
  for (const target of graph.get(file) ?? []) {
    if (state.get(target) === 'open')
      problems.push(`circle: ${[...stack.slice(stack.indexOf(target)), target].join(' → ')}`);
    else if (!state.has(target)) visit(target);
  }
  stack.pop();
  state.set(file, 'done');
};
for (const file of files) if (!state.has(file)) visit(file);

// Small modules: no source file over 400 lines.
for (const file of files) {
  const lines = readFileSync(file, 'utf8').split('\n').length - 1;
  if (lines > 400) problems.push(`${file}: ${lines} lines (at most 400)`);
}

if (problems.length > 0) {
  console.error(`src/ breaks its layers:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`src/: ${files.length} files, no circle, no arrow up a floor, none over 400 lines`);
