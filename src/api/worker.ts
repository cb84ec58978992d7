/**
 * The Worker kind's schema: one registered worker of a pool. The controller
 * creates and deletes Workers; users read them. The CRD (constructs) and the
 * controller's types both come from these definitions.
 */
import { WORKER_STATES } from './conditions.js';
import { bool, conditions, int64, obj, oneOf, str, type WireOf } from './schema.js';

export const WORKER_SPEC_SCHEMA = obj(
  'Identity of the worker, set by the controller when it creates the Worker.',
  {
    poolName: str('Name of the WorkerPool this worker belongs to, in the same namespace.', { minLength: 1 }),
    workerId: str('The backend\'s id of the worker.', { minLength: 1 }),
  },
  {
    required: ['poolName', 'workerId'],
    'x-kubernetes-validations': [
      { rule: 'self.poolName == oldSelf.poolName && self.workerId == oldSelf.workerId', message: 'spec.poolName and spec.workerId cannot change' },
    ],
  },
);

export const WORKER_STATUS_SCHEMA = obj('The observed state of the worker, written by the controller.', {
  registered: bool('Whether the worker is registered with the backend.'),
  connected: bool('Whether the worker\'s session with the backend\'s broker is open.'),
  state: oneOf('Pending, Idle, Busy, Draining or Failed.', WORKER_STATES),
  currentRunID: str('The run the worker is processing, if any.'),
  observedGeneration: int64('The generation this status was computed from.'),
  conditions: conditions('Registered and Connected, with reasons.'),
});

export type WorkerSpec = WireOf<typeof WORKER_SPEC_SCHEMA>;
export type WorkerStatus = WireOf<typeof WORKER_STATUS_SCHEMA>;
