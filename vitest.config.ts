import { defineConfig } from 'vitest/config';

// Tests that need a Kubernetes API server live under these folders; only when
// one of them is selected does the "cluster" project's global setup build and
// start kube-apiserver + etcd (see test/setup/cluster.ts).
const clusterTests = ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    // Under .ci/run, also name each skipped test (test/setup/skipped-reporter.ts).
    reporters: process.env.KWC_CI === '1' ? ['default', './test/setup/skipped-reporter.ts'] : ['default'],
    hookTimeout: 600_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [...clusterTests, '**/node_modules/**'] },
      },
      {
        extends: true,
        test: { name: 'cluster', include: clusterTests, globalSetup: ['test/setup/cluster.ts'] },
      },
    ],
  },
});
