import { defineConfig } from 'vitest/config';

// The unit tests that exercise the pure core Stryker mutates (see
// stryker.config.json and docs/mutation.md). No cluster, no helm, no cdk8s
// synth: each mutant reruns only the tests that cover it, but the initial run
// executes all of these, and on 2 cores the whole of test/unit (about 4 min)
// would be paid again for nothing.
export default defineConfig({
  test: {
    include: [
      'test/unit/protocol-base64.test.ts',
      'test/unit/protocol-messages.test.ts',
      'test/unit/protocol-registration.test.ts',
      'test/unit/protocol-token.test.ts',
      'test/unit/protocol-json.test.ts',
      'test/unit/scale-plan.test.ts',
      'test/unit/pod-status.test.ts',
      'test/unit/run-timeouts.test.ts',
      'test/unit/run-pod.test.ts',
      'test/unit/image-host.test.ts',
      'test/unit/pod-history.test.ts',
      'test/unit/pool-credentials.test.ts',
      'test/unit/redaction.test.ts',
      'test/unit/runtime-log.test.ts',
      'test/unit/construct-validate.test.ts',
    ],
    testTimeout: 60_000,
  },
});
