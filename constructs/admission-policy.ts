/**
 * A ValidatingAdmissionPolicy that confines the controller's writes of Pods
 * and Secrets to its own objects. RBAC cannot say "only Pods you made": the
 * controller needs create/patch/delete on Pods and Secrets in every watched
 * namespace. With this policy the API server refuses any create, update or
 * delete of a Pod or Secret by the controller's ServiceAccount unless the
 * object carries the managed-by label and a controller owner reference to a
 * Worker, so a stolen controller token cannot start an arbitrary Pod, nor
 * change or delete a Secret or Pod it does not manage.
 *
 * ValidatingAdmissionPolicy is GA (admissionregistration.k8s.io/v1) since
 * Kubernetes 1.30; on older clusters turn it off (`admissionPolicy: false`).
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { API_GROUP, LABEL_MANAGED_BY, MANAGED_BY_VALUE, WORKER_KIND } from '../src/api/constants.js';

export interface ControllerAdmissionPolicyProps {
  /** Name of the policy and its binding. */
  readonly name: string;
  /** Namespace of the controller's ServiceAccount. */
  readonly namespace: string;
  readonly serviceAccountName: string;
}

/** The CEL check: the object (the old one, for a delete) is a managed object owned by a Worker. */
export function managedObjectExpression(): string {
  const o = 'variables.target';
  return [
    `has(${o}.metadata.labels)`,
    `'${LABEL_MANAGED_BY}' in ${o}.metadata.labels`,
    `${o}.metadata.labels['${LABEL_MANAGED_BY}'] == '${MANAGED_BY_VALUE}'`,
    `has(${o}.metadata.ownerReferences)`,
    `${o}.metadata.ownerReferences.exists(r, r.kind == '${WORKER_KIND}' && r.apiVersion.startsWith('${API_GROUP}/') && has(r.controller) && r.controller)`,
  ].join(' && ');
}

export class ControllerAdmissionPolicy extends Construct {
  constructor(scope: Construct, id: string, props: ControllerAdmissionPolicyProps) {
    super(scope, id);
    const user = `system:serviceaccount:${props.namespace}:${props.serviceAccountName}`;
    new ApiObject(this, 'Policy', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: props.name },
      spec: {
        failurePolicy: 'Fail',
        // Written with the API server's defaults, so that applying the install again changes nothing.
        matchConstraints: {
          matchPolicy: 'Equivalent',
          namespaceSelector: {},
          objectSelector: {},
          resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['pods', 'secrets'], scope: '*' }],
        },
        matchConditions: [{ name: 'controller-service-account', expression: `request.userInfo.username == '${user}'` }],
        variables: [{ name: 'target', expression: "request.operation == 'DELETE' ? oldObject : object" }],
        validations: [
          {
            expression: managedObjectExpression(),
            messageExpression: `'the controller may only write ' + request.resource.resource + ' that carry the label ${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE} and a controller owner reference to a ${WORKER_KIND}; ' + request.operation + ' of ' + request.namespace + '/' + request.name + ' refused'`,
            reason: 'Forbidden',
          },
        ],
      },
    });
    new ApiObject(this, 'Binding', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: props.name },
      spec: { policyName: props.name, validationActions: ['Deny'] },
    });
  }
}
