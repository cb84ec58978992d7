/**
 * What the controller's ServiceAccount must be able to do, written out by hand
 * rather than derived from src/controller/permissions.ts, so that a wrong
 * permissions list fails the RBAC tests instead of agreeing with itself.
 */
import type { Check } from './access-review.js';

export const CONTROLLER_NAMESPACE = 'spacelift-worker-controller-system';
export const CONTROLLER_SA = 'kube-workerpool-controller';

export const CONTROLLER = { namespace: CONTROLLER_NAMESPACE, name: CONTROLLER_SA };
export const W = { group: 'workers.spacelift.io' };

/** Everything the controller does in a namespace with WorkerPools (any namespace, for the default install). */
export const mustAllowInWatchedNamespaces: Check[] = [
  ['create', 'pods'],
  ['delete', 'pods'],
  ['watch', 'pods'],
  ['list', 'pods'],
  ['get', 'pods'],
  ['patch', 'pods'],
  ['get', 'pods', { subresource: 'log' }],
  ['get', 'workerpools', W],
  ['list', 'workerpools', W],
  ['watch', 'workerpools', W],
  ['patch', 'workerpools', W],
  ['patch', 'workerpools', { ...W, subresource: 'status' }],
  ['update', 'workerpools', { ...W, subresource: 'finalizers' }],
  ['create', 'workers', W],
  ['delete', 'workers', W],
  ['watch', 'workers', W],
  ['patch', 'workers', W],
  ['patch', 'workers', { ...W, subresource: 'status' }],
  ['get', 'secrets'],
  ['get', 'configmaps'],
  ['watch', 'secrets'],
  ['create', 'secrets'],
  ['patch', 'secrets'],
  ['delete', 'secrets'],
  ['create', 'events'],
  ['patch', 'events'],
  ['create', 'events', { group: 'events.k8s.io' }],
];

