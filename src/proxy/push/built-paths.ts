/** Where reported builds go: the push queue, or in GitHub cache mode the pack's collector. */
export interface BuiltPaths {
  enqueue(paths: string[]): void;
  enqueueOutputsOf(drvPath: string): Promise<void>;
  idle(): Promise<void>;
  readonly queued: number;
  readonly isIdle: boolean;
}
