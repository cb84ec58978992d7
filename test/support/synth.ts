/** Synthesizes constructs in memory for field-level assertions. */
import { Chart, Testing } from 'cdk8s';
import { WorkerPoolController, WorkerPoolControllerProps } from '../../constructs/index.js';

export interface ManifestObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> };
  readonly [field: string]: unknown;
}

export function synthChart(build: (chart: Chart) => void): ManifestObject[] {
  const chart = new Chart(Testing.app(), 'test', { disableResourceNameHashes: true });
  build(chart);
  return Testing.synth(chart) as ManifestObject[];
}

export function synthController(props?: WorkerPoolControllerProps): ManifestObject[] {
  return synthChart((chart) => new WorkerPoolController(chart, 'controller', props));
}

export function find(objects: readonly ManifestObject[], kind: string, name: string): ManifestObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) {
    throw new Error(`no ${kind} named ${name}; have ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  }
  return found;
}

/** Follows a dotted path through plain objects, failing loudly where it breaks. */
export function at(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split('.')) {
    if (typeof current !== 'object' || current === null || !(part in current)) {
      throw new Error(`path ${path} breaks at "${part}"`);
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
