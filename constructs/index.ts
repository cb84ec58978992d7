/** The library entry point for other cdk8s apps. */
export { WorkerPoolController, CONTROLLER_DEFAULTS } from './controller.js';
export type { WorkerPoolControllerProps, ControllerResources, ControllerServiceMonitorOptions, ControllerDashboardOptions } from './controller.js';
export { ControllerServiceMonitor, ControllerDashboard, dashboardJson } from './monitoring.js';
export { grafanaDashboard } from './dashboard.js';
export { VERSION } from './labels.js';
export { WorkerPool } from './workerpool.js';
export type { WorkerPoolProps, WorkerPoolCredentials } from './workerpool.js';
export { WorkerPoolCrd, MAX_POOL_NAME_LENGTH } from './workerpool-crd.js';
export { WorkerCrd } from './worker-crd.js';
export { ControllerRbac } from './rbac.js';
export type { ControllerRbacProps } from './rbac.js';
export { ControllerAdmissionPolicy } from './admission-policy.js';
export type { ControllerAdmissionPolicyProps } from './admission-policy.js';
export * as api from './api.js';
