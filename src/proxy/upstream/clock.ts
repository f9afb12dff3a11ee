/**
 * The time as the daemon's token handling reads it. Injectable so tests move a token past its
 * expiry without waiting for it (the server takes the same `now` through `startServer`'s options).
 */
export interface Clock {
  /** Unix milliseconds. */
  now(): number;
  /** Calls `fn` once `ms` have passed on this clock, without keeping the process alive; returns the cancel. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};
