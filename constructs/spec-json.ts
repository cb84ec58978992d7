/**
 * A WorkerPool spec as a cdk8s app writes it (`WorkerPoolSpecProps`), turned
 * into the JSON the API server takes, guided by the CRD schema it is typed
 * from: fields the schema does not have are refused with their path, so are
 * malformed quantities and durations, and undefined fields are left out.
 *
 * Quantities may be strings, numbers or `Quantity` objects of any cdk8s-plus
 * version or of an app's own `imports/k8s.ts` (all are classes whose only
 * field is `value`), so they are unwrapped by shape, not by class.
 *
 * Embedded Kubernetes objects (a Volume, a Container) are written with
 * cdk8s-plus names, which differ from the JSON names in places (`hostIp` for
 * `hostIP`, `volumeId` for `volumeID`), so each goes through the cdk8s-plus-28
 * `toJson_*` function of its type, as cdk8s-plus's own `Kube*` objects do.
 * Those functions read a quantity as `x.value`, drop fields they do not know
 * and skip the rest of the object silently; so they read the value through a
 * proxy that hands out plain strings and numbers as `{ value }` leaves and
 * records every field read, and a field left unread is an error naming it
 * rather than a field lost.
 */
import { k8s } from 'cdk8s-plus-28';
import type { Schema } from '../src/api/schema.js';
import { WORKERPOOL_SPEC_SCHEMA, type WorkerPoolSpec, type WorkerPoolSpecProps } from '../src/api/workerpool.js';

type Converter = (value: object) => unknown;

function via<P>(toJson: (obj: P | undefined) => unknown): Converter {
  // The value has the shape of P, with plain values where P has Quantity objects (see K8sProps).
  return (value) => toJson(value as P);
}

const CONTAINER_OVERRIDES = ['initContainer', 'grpcServerContainer', 'workerContainer'] as const;

/**
 * The converter of each embedded object, by its place in the spec (`[]` is an
 * array item). A unit test checks that these are exactly the schema's
 * embedded fields.
 */
export const EMBEDDED_CONVERTERS: ReadonlyMap<string, Converter> = new Map<string, Converter>([
  ...CONTAINER_OVERRIDES.flatMap((c): [string, Converter][] => [
    [`pod.${c}.env[]`, via(k8s.toJson_EnvVar)],
    [`pod.${c}.envFrom[]`, via(k8s.toJson_EnvFromSource)],
    [`pod.${c}.volumeMounts[]`, via(k8s.toJson_VolumeMount)],
    [`pod.${c}.securityContext`, via(k8s.toJson_SecurityContext)],
  ]),
  ['pod.customInitContainers[]', via(k8s.toJson_Container)],
  ['pod.additionalSidecarContainers[]', via(k8s.toJson_Container)],
  ['pod.workspaceVolume', via(k8s.toJson_Volume)],
  ['pod.binariesCacheVolume', via(k8s.toJson_Volume)],
  ['pod.volumes[]', via(k8s.toJson_Volume)],
  ['pod.securityContext', via(k8s.toJson_PodSecurityContext)],
  ['pod.affinity', via(k8s.toJson_Affinity)],
  ['pod.tolerations[]', via(k8s.toJson_Toleration)],
  ['pod.dnsConfig', via(k8s.toJson_PodDnsConfig)],
  ['pod.topologySpreadConstraints[]', via(k8s.toJson_TopologySpreadConstraint)],
]);

/** The spec as JSON; throws an error naming the field and the value for anything the CRD would not take. */
export function workerPoolSpecJson(spec: WorkerPoolSpecProps): WorkerPoolSpec {
  return toJson(WORKERPOOL_SPEC_SCHEMA, spec, 'spec', '') as WorkerPoolSpec;
}

/** `field` names the value for errors (`spec.pod.volumes[2]`); `place` finds its converter (`pod.volumes[]`). */
function toJson(schema: Schema, value: unknown, field: string, place: string): unknown {
  if (value === undefined) return undefined;
  if (schema['x-kubernetes-preserve-unknown-fields'] === true) return embeddedJson(place, value, field);
  if (schema['x-kubernetes-int-or-string'] === true) return quantityJson(schema, value, field);
  switch (schema.type) {
    case 'object':
      return objectJson(schema, value, field, place);
    case 'array': {
      if (!Array.isArray(value)) throw new Error(`${field} must be an array, got ${show(value)}`);
      const items = schema.items ?? {};
      return value.map((item, i) => toJson(items, item, `${field}[${i}]`, `${place}[]`));
    }
    case 'string':
      if (typeof value !== 'string') throw new Error(`${field} must be a string, got ${show(value)}`);
      if (schema.enum !== undefined && !schema.enum.includes(value)) {
        throw new Error(`${field} must be one of ${schema.enum.join(', ')}, got ${show(value)}`);
      }
      if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
        throw new Error(`${field} must match ${schema.pattern}${schema.description === undefined ? '' : ` (${schema.description})`}, got ${show(value)}`);
      }
      return value;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < (schema.minimum ?? -Infinity)) {
        throw new Error(`${field} must be an integer${schema.minimum === undefined ? '' : ` of at least ${schema.minimum}`}, got ${show(value)}`);
      }
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw new Error(`${field} must be true or false, got ${show(value)}`);
      return value;
    default:
      return value;
  }
}

function objectJson(schema: Schema, value: unknown, field: string, place: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw new Error(`${field} must be an object, got ${show(value)}`);
  const result: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const child = schema.properties?.[key] ?? schema.additionalProperties;
    if (child === undefined) {
      const known = Object.keys(schema.properties ?? {});
      const near = known.find((k) => k.toLowerCase() === key.toLowerCase());
      throw new Error(
        `${field}.${key} is not a field of ${field}${near === undefined ? `; its fields are ${known.join(', ')}` : `; did you mean ${near}?`}`,
      );
    }
    const json = toJson(child, item, `${field}.${key}`, schema.properties?.[key] === undefined ? `${place}.*` : place === '' ? key : `${place}.${key}`);
    if (json !== undefined) result[key] = json;
  }
  return result;
}

function quantityJson(schema: Schema, value: unknown, field: string): string | number {
  const plain = isValueObject(value) ? value.value : value;
  if (typeof plain === 'number' || (typeof plain === 'string' && (schema.pattern === undefined || new RegExp(schema.pattern).test(plain)))) {
    return plain;
  }
  throw new Error(`${field} must be a Kubernetes quantity such as "500m", "4Gi" or 2 (a string, a number or a Quantity), got ${show(value)}`);
}

/** A plain value handed to a `toJson_*` function, which reads quantities as `.value` and copies the rest. */
class Leaf {
  constructor(readonly value: string | number | boolean) {}
}

function embeddedJson(place: string, value: unknown, field: string): unknown {
  const convert = EMBEDDED_CONVERTERS.get(place);
  if (convert === undefined) throw new Error(`no converter for the embedded object at ${place} (constructs/spec-json.ts)`);
  if (!isPlainObject(value)) throw new Error(`${field} must be an object, got ${show(value)}`);
  const unread = new Set<string>();
  let json: unknown;
  try {
    json = convert(tracked(value, field, unread) as object);
  } catch (err) {
    throw new Error(`${field} cannot be written as JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (unread.size > 0) {
    throw new Error(
      `${[...unread].join(', ')}: not a field of the Kubernetes 1.28 type (cdk8s-plus-28) that ${field} has; ` +
        'for a field of a newer Kubernetes, add it with a JSON patch on the WorkerPool construct\'s resource (resource.addJsonPatch)',
    );
  }
  return plainJson(json);
}

/** The value as a `toJson_*` function should see it: see the module comment. */
function tracked(value: unknown, field: string, unread: Set<string>): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return new Leaf(value);
  if (typeof value !== 'object' || value instanceof Date || isValueObject(value)) return value;
  // A copy, so that a frozen object does not trip the proxy's invariants.
  const isArray = Array.isArray(value);
  const target: Record<string | symbol, unknown> = isArray ? [...(value as unknown[])] as unknown as Record<string, unknown> : { ...value };
  const name = (key: string) => (isArray ? `${field}[${key}]` : `${field}.${key}`);
  for (const [key, item] of Object.entries(target)) if (item !== undefined) unread.add(name(key));
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key !== 'string' || !Object.hasOwn(t, key) || (isArray && key === 'length')) return Reflect.get(t, key, receiver);
      unread.delete(name(key));
      return tracked(t[key], name(key), unread);
    },
  });
}

/** A `toJson_*` result with its leaves unwrapped. */
function plainJson(value: unknown): unknown {
  if (value instanceof Leaf || isValueObject(value)) return value.value;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(plainJson);
  if (typeof value === 'object' && value !== null) {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const json = plainJson(item);
      if (json !== undefined) result[key] = json;
    }
    return result;
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A `Quantity` or `IntOrString` of any cdk8s-plus version: an instance whose only field is `value`. */
function isValueObject(value: unknown): value is { readonly value: string | number } {
  if (typeof value !== 'object' || value === null || isPlainObject(value) || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  const inner: unknown = (value as { value?: unknown }).value;
  return keys.length === 1 && keys[0] === 'value' && (typeof inner === 'string' || typeof inner === 'number');
}

function show(value: unknown): string {
  if (isValueObject(value)) return `${value.constructor.name}(${JSON.stringify(value.value)})`;
  return typeof value === 'object' && value !== null && !isPlainObject(value) && !Array.isArray(value)
    ? `a ${value.constructor.name}`
    : JSON.stringify(value) ?? String(value);
}
