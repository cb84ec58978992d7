import { expect, test } from 'vitest';
import { workerPoolSpecFromApi, workerPoolSpecToApi } from '../../src/controller/api-types.js';

test('a spec read from the API keeps every field, under the generated type names', () => {
  const fromApi = {
    poolSize: 3,
    token: { secretKeyRef: { name: 's', key: 'token' } },
    privateKey: { secretKeyRef: { name: 's', key: 'privateKey' } },
    keepSuccessfulPods: false,
    successfulPodsHistoryLimit: 2,
    failedPodsHistoryLimit: 5,
    successfulPodsHistoryTTL: '1h',
    failedPodsHistoryTTL: '24h',
    allowedRunnerImageHosts: ['public.ecr.aws'],
    pod: { activeDeadlineSeconds: 4200, labels: { team: 'a' } },
  };
  const spec = workerPoolSpecFromApi(fromApi);
  expect(spec.failedPodsHistoryTtl).toBe('24h');
  expect(spec.successfulPodsHistoryTtl).toBe('1h');
  expect(spec.poolSize).toBe(3);
  expect(workerPoolSpecToApi(spec)).toEqual(fromApi);
});
