/**
 * A clock tests move by hand: the real time plus an offset. Handed to the server (`now`) and the
 * daemon (`clock`), it takes a token past its expiry at once instead of sleeping until then.
 */
import type { Clock } from '../../src/proxy/upstream/clock.js';

export class ManualClock implements Clock {
  private offset = 0;
  private frozenAt: number | undefined;
  private timers: { due: number; fn: () => void }[] = [];

  readonly now = (): number => (this.frozenAt ?? Date.now()) + this.offset;

  /** Stops the real time from moving it: from now on only `advance` does. */
  freeze(): this {
    this.frozenAt = Date.now();
    return this;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { due: this.now() + ms, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves the time on by `ms` and fires the timers that fell due, earliest first. */
  advance(ms: number): void {
    this.offset += ms;
    const due = this.timers.filter((t) => t.due <= this.now()).sort((a, b) => a.due - b.due);
    this.timers = this.timers.filter((t) => !due.includes(t));
    for (const timer of due) timer.fn();
  }
}
