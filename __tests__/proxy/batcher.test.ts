/**
 * The lookup batcher's rules: what is asked in one turn goes out together, a key asked twice is
 * fetched once, batches are bounded in size and in number at once, and what arrives while a batch
 * is out goes in the next one, which leaves after the last one's answers, in the turn they came.
 */
import { describe, expect, it } from '@jest/globals';
import { Batcher } from '../../src/proxy/pull/lookup-batcher.js';

/** A fetch whose batches the test answers itself, recording what each asked for. */
function controlledFetch() {
  const batches: { keys: string[]; answer(values: Record<string, number>): void; fail(e: Error): void }[] =
    [];
  const fetch = (keys: string[]) =>
    new Promise<Map<string, number>>((resolve, reject) => {
      batches.push({
        keys,
        answer: (values) => resolve(new Map(Object.entries(values))),
        fail: reject,
      });
    });
  return { batches, fetch };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('Batcher', () => {
  it('gathers the keys of one turn into one batch, once each, and answers every asker', async () => {
    const { batches, fetch } = controlledFetch();
    const batcher = new Batcher(fetch, { maxBatch: 100, maxInFlight: 1 });
    const answers = Promise.all(['a', 'b', 'a', 'c'].map((key) => batcher.lookup(key)));
    await nextTurn();
    expect(batches.map((b) => b.keys)).toEqual([['a', 'b', 'c']]);
    batches[0]!.answer({ a: 1, c: 3 });
    expect(await answers).toEqual([1, undefined, 1, 3]);
  });

  it('sends what arrived while a batch was out as the next batch, bounded in size', async () => {
    const { batches, fetch } = controlledFetch();
    const batcher = new Batcher(fetch, { maxBatch: 2, maxInFlight: 1 });
    const first = batcher.lookup('a');
    await nextTurn();
    const later = ['b', 'c', 'd'].map((key) => batcher.lookup(key));
    await nextTurn();
    expect(batches.map((b) => b.keys)).toEqual([['a']]); // one batch at a time
    batches[0]!.answer({ a: 1 });
    expect(await first).toBe(1);
    await nextTurn();
    expect(batches.map((b) => b.keys)).toEqual([['a'], ['b', 'c']]);
    batches[1]!.answer({ b: 2 });
    expect(await later[0]).toBe(2);
    await nextTurn();
    expect(batches.map((b) => b.keys)).toEqual([['a'], ['b', 'c'], ['d']]);
    batches[2]!.answer({ d: 4 });
    expect(await Promise.all(later)).toEqual([2, undefined, 4]);
  });

  it('answers a batch before sending the next, which takes what is asked in the turn the answers came', async () => {
    const { batches, fetch } = controlledFetch();
    const batcher = new Batcher(fetch, { maxBatch: 10, maxInFlight: 1 });
    const first = batcher.lookup('a');
    await nextTurn();
    const waiting = batcher.lookup('b');
    batches[0]!.answer({ a: 1 });
    expect(await first).toBe(1);
    // As Nix asks again on the connections just answered: one batch for both, not one each.
    const askedAfter = batcher.lookup('c');
    expect(batches.map((b) => b.keys)).toEqual([['a']]);
    await nextTurn();
    expect(batches.map((b) => b.keys)).toEqual([['a'], ['b', 'c']]);
    batches[1]!.answer({ b: 2, c: 3 });
    expect(await Promise.all([waiting, askedAfter])).toEqual([2, 3]);
  });

  it('fails every asker of a failed batch and goes on with the next', async () => {
    const { batches, fetch } = controlledFetch();
    const batcher = new Batcher(fetch, { maxBatch: 10, maxInFlight: 2 });
    const failing = [batcher.lookup('a'), batcher.lookup('b')];
    await nextTurn();
    const next = batcher.lookup('c');
    await nextTurn();
    expect(batches.map((b) => b.keys)).toEqual([['a', 'b'], ['c']]); // two at once allowed
    batches[0]!.fail(new Error('server gone'));
    await expect(Promise.all(failing)).rejects.toThrow('server gone');
    await expect(failing[1]).rejects.toThrow('server gone');
    batches[1]!.answer({ c: 3 });
    expect(await next).toBe(3);
  });
});
