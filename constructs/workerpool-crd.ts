/**
 * The WorkerPool CustomResourceDefinition. The schema is the API's
 * (`src/api/workerpool.ts`).
 */
import { Construct } from 'constructs';
import type { ApiObject } from 'cdk8s';
import { customResourceDefinition } from './crd.js';
import { WORKERPOOL_KIND, WORKERPOOL_PLURAL, WORKERPOOL_SHORT_NAMES, WORKERPOOL_SINGULAR } from '../src/api/constants.js';
import { PoolCondition } from '../src/api/conditions.js';
import { WORKERPOOL_SPEC_SCHEMA, WORKERPOOL_STATUS_SCHEMA, WORKERPOOL_VALIDATIONS } from '../src/api/workerpool.js';

export { MAX_POOL_NAME_LENGTH } from '../src/api/workerpool.js';

export class WorkerPoolCrd extends Construct {
  public readonly resource: ApiObject;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.resource = customResourceDefinition(this, 'Resource', {
      kind: WORKERPOOL_KIND,
      plural: WORKERPOOL_PLURAL,
      singular: WORKERPOOL_SINGULAR,
      shortNames: WORKERPOOL_SHORT_NAMES,
      description: 'A pool of workers registered with the run scheduler; each scheduled run gets its own Pod.',
      spec: WORKERPOOL_SPEC_SCHEMA,
      status: WORKERPOOL_STATUS_SCHEMA,
      validations: WORKERPOOL_VALIDATIONS,
      subresources: {
        status: {},
        scale: { specReplicasPath: '.spec.poolSize', statusReplicasPath: '.status.actualPoolSize', labelSelectorPath: '.status.selector' },
      },
      printerColumns: [
        { name: 'Desired Pool Size', type: 'integer', jsonPath: '.status.desiredPoolSize', description: 'The poolSize the controller is working towards.' },
        { name: 'Actual Pool Size', type: 'integer', jsonPath: '.status.actualPoolSize', description: 'Workers registered and connected.' },
        { name: 'Busy', type: 'integer', jsonPath: '.status.busyWorkers', description: 'Workers running a run.' },
        { name: 'Idle', type: 'integer', jsonPath: '.status.idleWorkers', description: 'Workers waiting for a run.' },
        { name: 'Ready', type: 'string', jsonPath: `.status.conditions[?(@.type=="${PoolCondition.Ready}")].status`, description: 'The Ready condition: True when every worker is registered and connected.' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    });
  }
}
