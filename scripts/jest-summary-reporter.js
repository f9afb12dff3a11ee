// Prints one plain closing line, `tests: N passed, N failed, N skipped`, as the run's very last
// line, so tools that read a run's closing lines (CI dashboards, log scrapers) need not parse
// Jest's format. Jest prints its own summary after custom reporters run, hence the exit hook.
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numPendingTests, numTodoTests } = results;
    const line = `tests: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped\n`;
    process.once('exit', () => process.stderr.write(line));
  }
}
