/**
 * A small vocabulary for writing CRD schemas in code. Every helper demands a
 * description, because descriptions feed `kubectl explain` and the README's
 * configuration reference.
 */

/**
 * An OpenAPI v3 schema node with its JSON field names. Not cdk8s-plus's
 * `JsonSchemaProps`: that type renames `x-kubernetes-*` keys only at its own
 * level and passes `items` and `additionalProperties` through untouched, which
 * would put camelCase keys into the CRD.
 */
export interface Schema {
  readonly type?: 'object' | 'array' | 'string' | 'integer' | 'boolean' | 'number';
  readonly format?: string;
  readonly description?: string;
  readonly properties?: Record<string, Schema>;
  readonly required?: readonly string[];
  readonly items?: Schema;
  readonly additionalProperties?: Schema;
  readonly anyOf?: readonly Schema[];
  readonly enum?: readonly string[];
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly default?: unknown;
  readonly 'x-kubernetes-preserve-unknown-fields'?: boolean;
  readonly 'x-kubernetes-int-or-string'?: boolean;
  readonly 'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  readonly 'x-kubernetes-list-map-keys'?: readonly string[];
  readonly 'x-kubernetes-validations'?: readonly { readonly rule: string; readonly message: string }[];
}

export function str(description: string, extra: Partial<Schema> = {}): Schema {
  return { type: 'string', description, ...extra };
}

export function int(description: string, extra: Partial<Schema> = {}): Schema {
  return { type: 'integer', format: 'int32', description, ...extra };
}

export function bool(description: string, extra: Partial<Schema> = {}): Schema {
  return { type: 'boolean', description, ...extra };
}

export function obj(
  description: string,
  properties: Record<string, Schema>,
  extra: Partial<Schema> = {},
): Schema {
  return { type: 'object', description, properties, ...extra };
}

export function arr(description: string, items: Schema, extra: Partial<Schema> = {}): Schema {
  return { type: 'array', description, items, ...extra };
}

export function stringMap(description: string): Schema {
  return { type: 'object', description, additionalProperties: { type: 'string' } };
}

/**
 * A Kubernetes object embedded by value (a Volume, an Affinity, a Container).
 * Its full OpenAPI schema would multiply the CRD's size many times over (the
 * reason the product we re-implement cannot be installed with a client-side
 * `kubectl apply`), so the schema keeps it whole and the controller validates
 * it with a server-side dry run of the run Pod, reported in the pool's
 * PodTemplateValid condition. No `properties` either: `cdk8s import` would
 * then generate a type with only those fields and drop the others.
 */
export function embedded(description: string): Schema {
  return { type: 'object', description, 'x-kubernetes-preserve-unknown-fields': true };
}

/**
 * A Go-style duration ("24h", "90m", "1h30m"), as the product's history TTL
 * fields take them.
 */
export const GO_DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$';

export function duration(description: string): Schema {
  return str(`${description} A Go duration such as "24h", "90m" or "1h30m".`, {
    pattern: GO_DURATION_PATTERN,
    maxLength: 64,
  });
}

/** The standard metav1.Condition shape, so `kubectl wait --for=condition=...` works. */
export function conditions(description: string): Schema {
  return arr(
    description,
    obj(
      'A condition in the standard Kubernetes shape.',
      {
        type: str('Type of the condition, in CamelCase.', { maxLength: 316 }),
        status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
        observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The generation of the object this condition was computed from.' },
        lastTransitionTime: str('When the condition last changed status.', { format: 'date-time' }),
        reason: str('A CamelCase word that says why the condition has this status.', { maxLength: 1024 }),
        message: str('A human-readable explanation.', { maxLength: 32768 }),
      },
      { required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'] },
    ),
    { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
  );
}
