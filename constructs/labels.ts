/**
 * The recommended labels (app.kubernetes.io/*) every object of the install
 * carries, so that `kubectl get all,crd,clusterrole -l app.kubernetes.io/part-of=kube-workerpool-controller`
 * finds the whole install, whichever way it was installed.
 */
import { ApiObject } from 'cdk8s';
import type { IConstruct } from 'constructs';
import { CONTROLLER_NAME } from '../src/api/constants.js';

/** The version of this package, of its image tag and of the chart (a unit test compares it with package.json). */
export const VERSION = '0.1.0';

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_VERSION = 'app.kubernetes.io/version';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_PART_OF = 'app.kubernetes.io/part-of';
export const LABEL_INSTALL_MANAGED_BY = 'app.kubernetes.io/managed-by';

/** What installs and upgrades the objects of dist/manifests.yaml and a cdk8s app's output. */
export const DEFAULT_MANAGED_BY = 'kubectl';

/**
 * The recommended labels of an install named `name`; `extra` (the `labels`
 * prop: Helm sets `instance` and `managed-by` through it) comes last and wins.
 */
export function recommendedLabels(name: string, component: string, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return {
    [LABEL_NAME]: name,
    [LABEL_INSTANCE]: name,
    [LABEL_VERSION]: VERSION,
    [LABEL_COMPONENT]: component,
    [LABEL_PART_OF]: CONTROLLER_NAME,
    [LABEL_INSTALL_MANAGED_BY]: DEFAULT_MANAGED_BY,
    ...extra,
  };
}

/**
 * Labels every API object below `scope`; an object keeps the component it
 * was given (CRDs are `crd`, the admission policy `admission-policy`, ...),
 * the rest are `controller`.
 */
export function labelAll(scope: IConstruct, name: string, extra: Readonly<Record<string, string>>): void {
  for (const c of scope.node.findAll()) {
    if (!ApiObject.isApiObject(c)) continue;
    const component = c.metadata.getLabel(LABEL_COMPONENT) ?? 'controller';
    for (const [key, value] of Object.entries(recommendedLabels(name, component, extra))) c.metadata.addLabel(key, value);
  }
}
