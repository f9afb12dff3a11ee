/**
 * The narinfo set's read on SQLite (`MetadataStore.narInfoHashParts`): every slice's hash parts,
 * or those numbered after a cursor. Takes the store's statement cache, like sqlite-retention.ts.
 */
import type { HashPartsSince, SliceHashParts } from './metadata-store.js';
import { sliceOwnerOf, str } from './metadata-rows.js';
import type { Sql } from './sqlite-retention.js';
import { NIX32_ALPHABET } from '../../nix/nix32.js';

type Row = Record<string, string | number | null>;

const sliceHashParts = (row: Row): SliceHashParts => ({
  slice: str(row.slice),
  owner: sliceOwnerOf(row, 'owner_'),
  hashParts: str(row.hash_parts),
});

const INT64_MAX = 2n ** 63n - 1n;
/** A cursor of digits as SQLite's integer (one beyond any counter value is as good as the largest). */
const asInt64 = (digits: string): bigint => (BigInt(digits) > INT64_MAX ? INT64_MAX : BigInt(digits));

export async function readHashParts(sql: Sql, since: string | null): Promise<HashPartsSince> {
  const grouped = (rows: string) => `SELECT n.slice, group_concat(n.hash_part, '') AS hash_parts,
      s.issuer AS owner_issuer, s.repository_id AS owner_repository_id,
      s.repository_owner_id AS owner_repository_owner_id
    FROM ${rows} n LEFT JOIN slices s ON s.name = n.slice GROUP BY n.slice`;
  // Read first: writes are serialised, so every row numbered up to it is committed now. Rows
  // committed after it have higher numbers, so the next delta has them (maybe again).
  const counter = sql(`SELECT value FROM sequences WHERE name = 'narinfos'`).get() as Row | undefined;
  const cursor = String(counter?.value ?? 0);
  if (since !== null) {
    // On the seq index: left to itself the planner walks every row in slice order.
    const rows = sql(
      grouped('(SELECT slice, hash_part FROM narinfos INDEXED BY narinfos_by_seq WHERE seq > ?)'),
    ).all(asInt64(since)) as Row[];
    return { cursor, slices: rows.map(sliceHashParts) };
  }
  // Everything, in 32 steps by the first character with a turn of the event loop between them:
  // a million rows read at once held every other request for seconds.
  const slices = new Map<string, SliceHashParts & { parts: string[] }>();
  const step = sql(
    grouped(
      '(SELECT slice, hash_part FROM narinfos INDEXED BY narinfos_by_hash_slice WHERE hash_part >= ? AND hash_part < ?)',
    ),
  );
  for (let i = 0; i < NIX32_ALPHABET.length; i++) {
    const upper = NIX32_ALPHABET[i + 1] ?? '{';
    for (const row of step.all(NIX32_ALPHABET[i]!, upper) as Row[]) {
      const part = sliceHashParts(row);
      const entry = slices.get(part.slice);
      if (entry) entry.parts.push(part.hashParts);
      else slices.set(part.slice, { ...part, parts: [part.hashParts] });
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return {
    cursor,
    slices: [...slices.values()].map(({ slice, owner, parts }) => ({
      slice,
      owner,
      hashParts: parts.join(''),
    })),
  };
}
