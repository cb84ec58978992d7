/**
 * A typed WorkerPool for cdk8s apps, optionally with the Secret that holds its
 * credentials in the documented shape.
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { API_GROUP_VERSION, SECRET_KEY_PRIVATE_KEY, SECRET_KEY_TOKEN, WORKERPOOL_KIND } from '../src/api/constants.js';
import type { WorkerPoolSpecProps } from '../src/api/workerpool.js';
import { MAX_POOL_NAME_LENGTH } from './workerpool-crd.js';
import { workerPoolSpecJson } from './spec-json.js';
import { checkInteger, checkLabelName, checkObjectName } from './validate.js';


export interface WorkerPoolCredentials {
  /** The pool token exactly as the backend gave it (base64 of JSON). */
  readonly token: string;
  /** The pool private key as PEM text; the Secret stores it base64-encoded, as documented. */
  readonly privateKeyPem: string;
}

export interface WorkerPoolProps {
  /** Name of the WorkerPool. */
  readonly name: string;
  /**
   * Namespace of the WorkerPool and its Secret.
   * @default - the namespace kubectl applies to
   */
  readonly namespace?: string;
  /**
   * Number of workers.
   * @default 1
   */
  readonly poolSize?: number;
  /**
   * Credentials to put into a new Secret named `<name>-credentials`.
   * Mutually exclusive with `secretName`.
   * @default - no Secret is created
   */
  readonly credentials?: WorkerPoolCredentials;
  /**
   * An existing Secret with the keys `token` and `privateKey`.
   * @default - `credentials` decides
   */
  readonly secretName?: string;
  /**
   * Everything else of the WorkerPool spec, with the CRD's field names (see
   * the README's configuration reference). Quantities are strings such as
   * "500m", numbers or `Quantity` objects; embedded Kubernetes objects (volumes,
   * containers, affinity) are cdk8s-plus `k8s` types.
   * @default - the controller's defaults
   */
  readonly spec?: Omit<WorkerPoolSpecProps, 'poolSize' | 'token' | 'privateKey'>;
}

export class WorkerPool extends Construct {
  /** The WorkerPool object; `addJsonPatch` on it is the escape hatch for fields the types lack. */
  public readonly resource: ApiObject;
  public readonly secret?: k8s.KubeSecret;

  constructor(scope: Construct, id: string, props: WorkerPoolProps) {
    super(scope, id);
    checkObjectName('name', props.name);
    if (props.name.length > MAX_POOL_NAME_LENGTH) {
      throw new Error(`name must be at most ${MAX_POOL_NAME_LENGTH} characters so that worker names fit, got ${props.name.length} ("${props.name}")`);
    }
    if (props.namespace !== undefined) checkLabelName('namespace', props.namespace);
    const poolSize = props.poolSize ?? 1;
    checkInteger('poolSize', poolSize, 0);
    if (props.credentials !== undefined && props.secretName !== undefined) {
      throw new Error(`set credentials or secretName, not both (secretName is "${props.secretName}")`);
    }

    let secretName = props.secretName;
    if (props.credentials !== undefined) {
      const { token, privateKeyPem } = props.credentials;
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token.trim())) {
        throw new Error('credentials.token must be the base64 text the backend gave, as is; it contains characters base64 does not use');
      }
      if (!privateKeyPem.includes('-----BEGIN') || !privateKeyPem.includes('PRIVATE KEY-----')) {
        throw new Error('credentials.privateKeyPem must be a PEM private key ("-----BEGIN ... PRIVATE KEY-----"), not its base64 encoding');
      }
      secretName = `${props.name}-credentials`;
      this.secret = new k8s.KubeSecret(this, 'Secret', {
        metadata: { name: secretName, namespace: props.namespace },
        type: 'Opaque',
        stringData: {
          [SECRET_KEY_TOKEN]: token.trim(),
          [SECRET_KEY_PRIVATE_KEY]: Buffer.from(privateKeyPem, 'utf8').toString('base64'),
        },
      });
    }

    const spec: WorkerPoolSpecProps = {
      ...props.spec,
      poolSize,
      ...(secretName === undefined
        ? {}
        : {
            token: { secretKeyRef: { name: secretName, key: SECRET_KEY_TOKEN } },
            privateKey: { secretKeyRef: { name: secretName, key: SECRET_KEY_PRIVATE_KEY } },
          }),
    };
    this.resource = new ApiObject(this, 'Resource', {
      apiVersion: API_GROUP_VERSION,
      kind: WORKERPOOL_KIND,
      metadata: { name: props.name, namespace: props.namespace },
      spec: workerPoolSpecJson(spec),
    });
  }
}
