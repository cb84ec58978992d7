/**
 * The Worker CustomResourceDefinition: one registered worker of a pool. The
 * schema is the API's (`src/api/worker.ts`).
 */
import { Construct } from 'constructs';
import type { ApiObject } from 'cdk8s';
import { customResourceDefinition } from './crd.js';
import { WORKER_KIND, WORKER_PLURAL, WORKER_SHORT_NAMES, WORKER_SINGULAR } from '../src/api/constants.js';
import { WORKER_SPEC_SCHEMA, WORKER_STATUS_SCHEMA } from '../src/api/worker.js';

export class WorkerCrd extends Construct {
  public readonly resource: ApiObject;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.resource = customResourceDefinition(this, 'Resource', {
      kind: WORKER_KIND,
      plural: WORKER_PLURAL,
      singular: WORKER_SINGULAR,
      shortNames: WORKER_SHORT_NAMES,
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
