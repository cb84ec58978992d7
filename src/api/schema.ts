/**
 * A small vocabulary for writing CRD schemas in code, typed: each schema node
 * carries, as types only, the value it describes in two views, so that the
 * CRD, the controller's types and the cdk8s props come from one definition.
 *
 * - `WireOf<S>`: the JSON the API server serves (what the controller reads);
 * - `PropsOf<S>`: what a cdk8s app writes, where embedded Kubernetes objects
 *   are cdk8s-plus `k8s` types and quantities may be `Quantity` objects.
 *
 * Every helper demands a description, because descriptions feed
 * `kubectl explain` and the README's configuration reference.
 */
import type { k8s } from 'cdk8s-plus-28';

/** A JSON object whose fields the schema does not list (an embedded Kubernetes object). */
export type JsonObject = { readonly [key: string]: unknown };

/**
 * An OpenAPI v3 schema node with its JSON field names. Not cdk8s-plus's
 * `JsonSchemaProps`: that type renames `x-kubernetes-*` keys only at its own
 * level and passes `items` and `additionalProperties` through untouched, which
 * would put camelCase keys into the CRD.
 *
 * `W` and `P` are never set: they are the wire and props types of the value.
 */
export interface Schema<W = unknown, P = W> {
  readonly type?: 'object' | 'array' | 'string' | 'integer' | 'boolean' | 'number';
  readonly format?: string;
  readonly description?: string;
  readonly properties?: Readonly<Record<string, Schema>>;
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
  readonly 'x-kubernetes-validations'?: readonly Validation[];
  /** Type-only (never set): the JSON value this node describes. */
  readonly __wire?: W;
  /** Type-only (never set): the value a cdk8s app writes for it. */
  readonly __props?: P;
}

/** A CEL rule with the message the API server answers when it fails (`messageExpression` may name the values). */
export type Validation =
  | { readonly rule: string; readonly message: string }
  | { readonly rule: string; readonly messageExpression: string; readonly message?: string };

/** The JSON value a schema describes, as the API server serves it. */
export type WireOf<S> = S extends Schema<infer W, unknown> ? W : never;
/** The value a cdk8s app writes for a schema. */
export type PropsOf<S> = S extends Schema<unknown, infer P> ? P : never;

type Fields = Readonly<Record<string, Schema>>;
type Flatten<T> = { readonly [K in keyof T]: T[K] };
type ObjectOf<F extends Fields, R extends keyof F, View extends 'wire' | 'props'> = Flatten<
  { readonly [K in Extract<keyof F, R>]: View extends 'wire' ? WireOf<F[K]> : PropsOf<F[K]> } & {
    readonly [K in Exclude<keyof F, R>]?: View extends 'wire' ? WireOf<F[K]> : PropsOf<F[K]>;
  }
>;

/** Extra keywords of a node; the typed fields (`required`, `enum`) have their own helpers. */
type Extra = Omit<Schema, 'type' | 'description' | 'properties' | 'required' | 'items' | 'enum' | '__wire' | '__props'>;

export function str(description: string, extra: Extra = {}): Schema<string> {
  return { type: 'string', description, ...extra };
}

/** A string that is one of `values`. */
export function oneOf<const V extends readonly string[]>(description: string, values: V, extra: Extra = {}): Schema<V[number]> {
  return { type: 'string', description, enum: values, ...extra };
}

export function int(description: string, extra: Extra = {}): Schema<number> {
  return { type: 'integer', format: 'int32', description, ...extra };
}

export function int64(description: string, extra: Extra = {}): Schema<number> {
  return { type: 'integer', format: 'int64', description, ...extra };
}

export function bool(description: string, extra: Extra = {}): Schema<boolean> {
  return { type: 'boolean', description, ...extra };
}

/** An object with these fields; those named in `required` are not optional in its types. */
export function obj<const F extends Fields, const R extends keyof F & string = never>(
  description: string,
  properties: F,
  extra: Extra & { readonly required?: readonly R[] } = {},
): Schema<ObjectOf<F, R, 'wire'>, ObjectOf<F, R, 'props'>> {
  return { type: 'object', description, properties, ...extra };
}

export function arr<W, P>(description: string, items: Schema<W, P>, extra: Extra = {}): Schema<readonly W[], readonly P[]> {
  return { type: 'array', description, items, ...extra };
}

export function stringMap(description: string): Schema<Readonly<Record<string, string>>> {
  return { type: 'object', description, additionalProperties: { type: 'string' } };
}

/** A Kubernetes quantity such as `500m` or `4Gi`: a string or a number, or a cdk8s `Quantity` in props. */
export const QUANTITY: Schema<string | number, string | number | k8s.Quantity> = {
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  'x-kubernetes-int-or-string': true,
  pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
};

/** A whole number, or a percentage such as "10%" (a PodDisruptionBudget's maxUnavailable). */
export function intOrPercent(description: string, extra: Extra = {}): Schema<number | string> {
  return { anyOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true, description, pattern: '^[0-9]+%?$', ...extra };
}

/** A map of resource names to quantities (a container's requests or limits). */
export function quantityMap(description: string): Schema<Readonly<Record<string, string | number>>, Readonly<Record<string, string | number | k8s.Quantity>>> {
  return { type: 'object', description, additionalProperties: QUANTITY };
}

/**
 * A Kubernetes object embedded by value (a Volume, an Affinity, a Container),
 * typed `P` for cdk8s apps (a cdk8s-plus `k8s` type). Its full OpenAPI schema
 * would multiply the CRD's size many times over (the reason the product we
 * re-implement cannot be installed with a client-side `kubectl apply`), so the
 * schema keeps it whole and the controller validates it with a server-side dry
 * run of the run Pod, reported in the pool's PodTemplateValid condition. No
 * `properties` either: `cdk8s import` would then generate a type with only
 * those fields and drop the others.
 */
export function embedded<P>(description: string): Schema<JsonObject, K8sProps<P>> {
  return { type: 'object', description, 'x-kubernetes-preserve-unknown-fields': true };
}

/**
 * A cdk8s `k8s` type as an app may write it: where the generated type wants a
 * `Quantity` or an `IntOrString` object (the only generated classes with just
 * a `value`), a plain string or number is accepted too, as in YAML. The
 * constructs unwrap both (constructs/spec-json.ts).
 */
export type K8sProps<T> = T extends Date
  ? T
  : T extends object
    ? [keyof T] extends ['value']
      ? T | string | number
      : T extends readonly (infer E)[]
        ? readonly K8sProps<E>[]
        : { readonly [K in keyof T]: K8sProps<T[K]> }
    : T;

/**
 * A Go-style duration ("24h", "90m", "1h30m"), as the product's history TTL
 * fields take them.
 */
export const GO_DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$';

export function duration(description: string): Schema<string> {
  return str(`${description} A Go duration such as "24h", "90m" or "1h30m".`, {
    pattern: GO_DURATION_PATTERN,
    maxLength: 64,
  });
}

/** The standard metav1.Condition shape, so `kubectl wait --for=condition=...` works. */
export const CONDITION_SCHEMA = obj(
  'A condition in the standard Kubernetes shape.',
  {
    type: str('Type of the condition, in CamelCase.', { maxLength: 316 }),
    status: oneOf('True, False or Unknown.', ['True', 'False', 'Unknown']),
    observedGeneration: int64('The generation of the object this condition was computed from.', { minimum: 0 }),
    lastTransitionTime: str('When the condition last changed status.', { format: 'date-time' }),
    reason: str('A CamelCase word that says why the condition has this status.', { maxLength: 1024 }),
    message: str('A human-readable explanation.', { maxLength: 32768 }),
  },
  { required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'] },
);

export function conditions(description: string): Schema<WireOf<typeof CONDITION_SCHEMA>[]> {
  return { type: 'array', description, items: CONDITION_SCHEMA, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] };
}
