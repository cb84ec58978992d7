/**
 * A namespaced CustomResourceDefinition of our group with one served and
 * stored version. Emitted through `ApiObject` so that the schema keeps its
 * JSON field names (see schema.ts).
 */
import { ApiObject } from 'cdk8s';
import type { Construct } from 'constructs';
import { API_GROUP, API_VERSION } from '../src/api/constants.js';
import { obj, str, type Schema } from '../src/api/schema.js';

export interface PrinterColumn {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'boolean' | 'date';
  readonly jsonPath: string;
  readonly description?: string;
}

export interface CrdProps {
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  /** Abbreviations `kubectl get` accepts (`kubectl get wp`). */
  readonly shortNames: readonly string[];
  /** Describes the kind; shown by `kubectl explain`. */
  readonly description: string;
  readonly spec: Schema;
  readonly status: Schema;
  /** Rules on the whole object (CEL), e.g. on `metadata.name`. */
  readonly validations?: Schema['x-kubernetes-validations'];
  readonly subresources: Record<string, unknown>;
  readonly printerColumns: readonly PrinterColumn[];
}

export function customResourceDefinition(scope: Construct, id: string, props: CrdProps): ApiObject {
  return new ApiObject(scope, id, {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${props.plural}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: { kind: props.kind, plural: props.plural, singular: props.singular, shortNames: [...props.shortNames], listKind: `${props.kind}List` },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: obj(
              props.description,
              {
                apiVersion: str('APIVersion of the object.'),
                kind: str('Kind of the object.'),
                metadata: { type: 'object' },
                spec: props.spec,
                status: props.status,
              },
              props.validations === undefined ? {} : { 'x-kubernetes-validations': props.validations },
            ),
          },
          subresources: props.subresources,
          additionalPrinterColumns: props.printerColumns,
        },
      ],
    },
  });
}
