import type { Reporter, TestModule } from 'vitest/node';

/**
 * Names every skipped test at the end of the run (vitest's own summary only
 * counts them), so a CI log says which tests skipped and a reader can check
 * each is one written for another machine (see skipWithout in
 * cluster-access.ts). Used under .ci/run (KWC_CI=1), where `-t` filters,
 * which also mark tests skipped, are not used.
 */
export default class SkippedReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const skipped = modules.flatMap((m) => [...m.children.allTests('skipped')].map((t) => `${m.project.name}: ${m.relativeModuleId} > ${t.fullName}`));
    process.stdout.write(`\nskipped tests: ${skipped.length}\n${skipped.map((s) => `  ${s}\n`).join('')}`);
  }
}
