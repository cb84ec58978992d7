import { Chart, Testing } from 'cdk8s';
import { describe, expect, test } from 'vitest';
import { WorkerPool, WorkerPoolProps } from '../../constructs/index.js';
import { at, find, synthChart } from '../support/synth.js';

const PEM = '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n';

describe('WorkerPool construct', () => {
  test('with credentials it writes the documented Secret and references it', () => {
    const objects = synthChart((chart) => new WorkerPool(chart, 'pool', {
      name: 'my-pool',
      namespace: 'workers',
      poolSize: 2,
      credentials: { token: 'eyJhIjoxfQ==', privateKeyPem: PEM },
      spec: { keepSuccessfulPods: true, failedPodsHistoryTTL: '24h', pod: { activeDeadlineSeconds: 4200 } },
    }));
    const secret = find(objects, 'Secret', 'my-pool-credentials');
    expect(secret.metadata.namespace).toBe('workers');
    expect(secret.stringData).toEqual({ token: 'eyJhIjoxfQ==', privateKey: Buffer.from(PEM).toString('base64') });
    const pool = find(objects, 'WorkerPool', 'my-pool');
    expect(pool.apiVersion).toBe('workers.spacelift.io/v1beta1');
    expect(pool.spec).toEqual({
      poolSize: 2,
      keepSuccessfulPods: true,
      failedPodsHistoryTTL: '24h',
      pod: { activeDeadlineSeconds: 4200 },
      token: { secretKeyRef: { name: 'my-pool-credentials', key: 'token' } },
      privateKey: { secretKeyRef: { name: 'my-pool-credentials', key: 'privateKey' } },
    });
  });

  test('embedded Kubernetes objects pass through whole', () => {
    const sidecar = { name: 'dind', image: 'docker:dind', securityContext: { privileged: true }, args: ['--tls=false'] };
    const objects = synthChart((chart) => new WorkerPool(chart, 'pool', {
      name: 'p',
      secretName: 'existing',
      spec: { pod: { additionalSidecarContainers: [sidecar], workerContainer: { env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] } } },
    }));
    const pool = find(objects, 'WorkerPool', 'p');
    expect(at(pool, 'spec.pod.additionalSidecarContainers')).toEqual([sidecar]);
    expect(at(pool, 'spec.pod.workerContainer.env')).toEqual([{ name: 'A', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }]);
    expect(at(pool, 'spec.token.secretKeyRef.name')).toBe('existing');
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
  });

  test('poolSize defaults to 1', () => {
    const pool = find(synthChart((chart) => new WorkerPool(chart, 'p', { name: 'p' })), 'WorkerPool', 'p');
    expect(pool.spec).toEqual({ poolSize: 1 });
  });

  test.each<[Partial<WorkerPoolProps>, string]>([
    [{ poolSize: -1 }, 'poolSize must be an integer from 0 to 9007199254740991, got -1'],
    [{ name: 'My_Pool' }, 'name must be a DNS-1123 subdomain'],
    [{ name: 'a'.repeat(227) }, 'name must be at most 226 characters so that worker names fit, got 227'],
    [{ secretName: 's', credentials: { token: 'eA==', privateKeyPem: PEM } }, 'set credentials or secretName, not both (secretName is "s")'],
    [{ credentials: { token: 'not base64!', privateKeyPem: PEM } }, 'credentials.token must be the base64 text'],
    [{ credentials: { token: 'eA==', privateKeyPem: Buffer.from(PEM).toString('base64') } }, 'credentials.privateKeyPem must be a PEM private key'],
  ])('rejects %j', (props, message) => {
    const chart = new Chart(Testing.app(), 'test');
    expect(() => new WorkerPool(chart, 'p', { name: 'p', ...props })).toThrow(message);
  });
});
