import { AuthorizationV1Api, type KubeConfig, type V1NonResourceAttributes, type V1ResourceAttributes } from '@kubernetes/client-node';

/**
 * Asks the API server whether a ServiceAccount may do something, as
 * `kubectl auth can-i --as=system:serviceaccount:<ns>:<name>` does, including
 * the groups its tokens carry so group bindings count as in production.
 */
export async function serviceAccountMay(
  kc: KubeConfig,
  serviceAccount: { namespace: string; name: string },
  attributes: { resource: V1ResourceAttributes } | { nonResource: V1NonResourceAttributes },
): Promise<boolean> {
  const { namespace, name } = serviceAccount;
  const review = await kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
    body: {
      spec: {
        user: `system:serviceaccount:${namespace}:${name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
        ...('resource' in attributes ? { resourceAttributes: attributes.resource } : { nonResourceAttributes: attributes.nonResource }),
      },
    },
  });
  return review.status?.allowed === true;
}

/** One row of an RBAC table: verb, resource, and where it applies. */
export type Check = [verb: string, resource: string, options?: { group?: string; subresource?: string; namespace?: string }];

export function resourceAttributes([verb, resource, options = {}]: Check, defaultNamespace: string): V1ResourceAttributes {
  return {
    verb,
    resource,
    group: options.group ?? '',
    ...(options.subresource !== undefined ? { subresource: options.subresource } : {}),
    namespace: options.namespace ?? defaultNamespace,
  };
}

/** "create pods/exec" style names for test titles. */
export function describeCheck([verb, resource, options = {}]: Check): string {
  const sub = options.subresource !== undefined ? `/${options.subresource}` : '';
  const group = options.group ? `.${options.group}` : '';
  const where = options.namespace === undefined ? '' : options.namespace === '' ? ' cluster-wide' : ` in ${options.namespace}`;
  return `${verb} ${resource}${sub}${group}${where}`;
}
