// Prints one plain closing line, `tests: N passed, N failed, N skipped`, after Jest's own summary,
// (on stderr, where Jest's summary goes, so it comes last), so tools that read a run's last lines (CI dashboards, log scrapers) need not parse Jest's format.
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numPendingTests, numTodoTests } = results;
    process.stderr.write(
      `tests: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped\n`,
    );
  }
}
