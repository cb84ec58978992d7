/**
 * The Worker CustomResourceDefinition: one registered worker of a pool. The
 * controller creates and deletes Workers; users read them.
 */
import { Construct } from 'constructs';
import type { ApiObject } from 'cdk8s';
import { customResourceDefinition } from './crd.js';
import { WORKER_KIND, WORKER_PLURAL, WORKER_SINGULAR } from '../src/constants.js';
import { bool, conditions, obj, Schema, str } from './schema.js';

export const WORKER_STATES = ['Pending', 'Idle', 'Busy', 'Draining', 'Failed'] as const;

const WORKER_SPEC_SCHEMA: Schema = obj(
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

const WORKER_STATUS_SCHEMA: Schema = obj('The observed state of the worker, written by the controller.', {
  registered: bool('Whether the worker is registered with the backend.'),
  connected: bool('Whether the worker\'s session with the backend\'s broker is open.'),
  state: str('Pending, Idle, Busy, Draining or Failed.', { enum: [...WORKER_STATES] }),
  currentRunID: str('The run the worker is processing, if any.'),
  observedGeneration: { type: 'integer', format: 'int64', description: 'The generation this status was computed from.' },
  conditions: conditions('Registered and Connected, with reasons.'),
});

export class WorkerCrd extends Construct {
  public readonly resource: ApiObject;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.resource = customResourceDefinition(this, 'Resource', {
      kind: WORKER_KIND,
      plural: WORKER_PLURAL,
      singular: WORKER_SINGULAR,
      description: 'A worker registered with the run scheduler on behalf of a WorkerPool.',
      spec: WORKER_SPEC_SCHEMA,
      status: WORKER_STATUS_SCHEMA,
      subresources: { status: {} },
      printerColumns: [
        { name: 'Pool', type: 'string', jsonPath: '.spec.poolName', description: 'The WorkerPool.' },
        { name: 'Registered', type: 'boolean', jsonPath: '.status.registered', description: 'Registered with the backend.' },
        { name: 'Status', type: 'string', jsonPath: '.status.state', description: 'Idle, Busy, Draining, ...' },
        { name: 'Run ID', type: 'string', jsonPath: '.status.currentRunID', description: 'The run in progress.' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    });
  }
}
