/**
 * The install limited to some namespaces (the constructs' watchNamespaces
 * option) grants the controller nothing outside them. It runs on a control
 * plane of its own: its ClusterRoles share names with the default install's,
 * which other test files apply to the shared cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane } from '../../src/cluster/control-plane.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';
import { synthController } from '../support/synth.js';
import { describeCheck, resourceAttributes, serviceAccountMay, type Check } from '../setup/access-review.js';
import { CONTROLLER_SA, mustAllowInWatchedNamespaces } from '../setup/controller-access.js';
import { canStartControlPlanes, kubectl, kubectlOk, skipWithout, startPrivateControlPlane } from '../setup/cluster-access.js';

const CONTROLLER_NAMESPACE = 'kwc-scoped';
const WATCHED = ['team-a', 'team-b'];
const UNWATCHED = 'team-c';
const controller = { namespace: CONTROLLER_NAMESPACE, name: CONTROLLER_SA };

describe.skipIf(skipWithout('control planes of its own (not KWC_TEST_KUBECONFIG; the Kubernetes binaries)', canStartControlPlanes()))('an install limited to namespaces team-a and team-b', () => {
  let plane: ControlPlane | undefined;
  const may = (check: Check, namespace: string): Promise<boolean> => {
    if (!plane) throw new Error('no control plane');
    return serviceAccountMay(loadKubeConfig(plane.kubeconfigPath), controller, { resource: resourceAttributes(check, namespace) });
  };

  beforeAll(async () => {
    plane = await startPrivateControlPlane();
    const kubeconfig = plane.kubeconfigPath;
    for (const ns of [...WATCHED, UNWATCHED]) await kubectlOk(['create', 'namespace', ns], { kubeconfig });
    const objects = synthController({ namespace: CONTROLLER_NAMESPACE, watchNamespaces: WATCHED });
    const applied = await kubectl(['apply', '-f', '-'], { kubeconfig, stdin: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
    if (applied.code !== 0) throw new Error(`applying the namespaced install failed: ${applied.stderr}`);
  });

  afterAll(async () => {
    await plane?.stop();
  });

  for (const namespace of WATCHED) {
    it.each(mustAllowInWatchedNamespaces.map((check) => [describeCheck(check), check] as const))(`may %s in ${namespace}`, async (_, check) => {
      expect(await may(check, namespace)).toBe(true);
    });
  }

  it.each(mustAllowInWatchedNamespaces.map((check) => [describeCheck(check), check] as const))(`may not %s in ${UNWATCHED}`, async (_, check) => {
    expect(await may(check, UNWATCHED)).toBe(false);
  });

  it.each(mustAllowInWatchedNamespaces.map((check) => [describeCheck(check), check] as const))('may not %s across all namespaces', async (_, check) => {
    expect(await may(check, '')).toBe(false);
  });

  it('may still hold its leader-election lease in its own namespace', async () => {
    expect(await may(['update', 'leases', { group: 'coordination.k8s.io' }], CONTROLLER_NAMESPACE)).toBe(true);
  });
});
