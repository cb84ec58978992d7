/**
 * Every condition type, condition reason, Event reason and Worker state the
 * controller writes: what users read in `kubectl describe` and match in
 * `kubectl wait --for=condition=...`, so each is spelled once, here.
 */

/** Conditions of a WorkerPool. */
export const PoolCondition = {
  Ready: 'Ready',
  CredentialsValid: 'CredentialsValid',
  PodTemplateValid: 'PodTemplateValid',
  Autoscaling: 'Autoscaling',
} as const;

/** Reasons of a WorkerPool's Ready condition. */
export const PoolReadyReason = {
  PoolReady: 'PoolReady',
  ScalingUp: 'ScalingUp',
  ScalingDown: 'ScalingDown',
  CannotRegister: 'CannotRegister',
  Deleting: 'Deleting',
} as const;

/** Reasons of a WorkerPool's CredentialsValid condition. */
export const CredentialsReason = {
  CredentialsAccepted: 'CredentialsAccepted',
  CredentialsNotConfigured: 'CredentialsNotConfigured',
  SecretNotFound: 'SecretNotFound',
  SecretKeyMissing: 'SecretKeyMissing',
  InvalidToken: 'InvalidToken',
  InvalidPrivateKey: 'InvalidPrivateKey',
  BackendRefused: 'BackendRefused',
  BackendUnreachable: 'BackendUnreachable',
} as const;
export type CredentialsProblem = Exclude<(typeof CredentialsReason)[keyof typeof CredentialsReason], 'CredentialsAccepted'>;

/** Reasons of a WorkerPool's PodTemplateValid condition. */
export const PodTemplateReason = {
  DryRunPassed: 'DryRunPassed',
  DryRunFailed: 'DryRunFailed',
} as const;

/** Reasons of a WorkerPool's Autoscaling condition (True while the autoscaler sizes the pool). */
export const AutoscalingReason = {
  /** The recommendation equals the demand (within min and max). */
  Stable: 'Stable',
  ScaledUp: 'ScaledUp',
  ScaledDown: 'ScaledDown',
  /** Demand is lower; the pool shrinks once scaleDownDelay has passed. */
  ScaleDownPending: 'ScaleDownPending',
  /** More runs wait than maxPoolSize workers can take. */
  AtMaximum: 'AtMaximum',
  /** The backend's demand cannot be read; the recommendation stays as it was. */
  DemandUnknown: 'DemandUnknown',
  /** spec.autoscaling is not set: spec.poolSize decides. */
  Disabled: 'Disabled',
} as const;

/** Conditions of a Worker. */
export const WorkerCondition = {
  Registered: 'Registered',
  Busy: 'Busy',
  CertificateValid: 'CertificateValid',
} as const;

/** Reasons of a Worker's CertificateValid condition. */
export const CertificateReason = {
  /** True: valid, renewed when two thirds of its lifetime have passed. */
  Current: 'Current',
  /** True: still valid, but the last renewal failed (also a WorkerCertificateRenewalFailed event); retried. */
  RenewalFailed: 'RenewalFailed',
  /** False: expired and not renewed; the broker refuses the worker until a renewal succeeds. */
  Expired: 'Expired',
} as const;

/** Reasons of a Worker's Registered condition. */
export const RegisteredReason = {
  Registered: 'Registered',
  WaitingForRun: 'WaitingForRun',
  RegistrationRefused: 'RegistrationRefused',
  BackendUnreachable: 'BackendUnreachable',
  CredentialsUnavailable: 'CredentialsUnavailable',
  CannotDeregister: 'CannotDeregister',
  /** A Secret with the Worker's name exists and is not owned by it: the controller will not adopt it. */
  SecretConflict: 'SecretConflict',
} as const;

/** Reasons of a Worker's Busy condition. */
export const BusyReason = {
  RunInProgress: 'RunInProgress',
  NoRun: 'NoRun',
} as const;

/** Reasons of the Events the controller records. */
export const EventReason = {
  /** On a WorkerPool whose token or private key cannot be used. */
  WorkerPoolCannotRegister: 'WorkerPoolCannotRegister',
  /** On a WorkerPool whose run Pod template fails the API server's validation. */
  PodTemplateInvalid: 'PodTemplateInvalid',
  /** On a Worker the backend refused to register. */
  WorkerRegistrationRefused: 'WorkerRegistrationRefused',
  /** On a Worker whose run failed. */
  RunFailed: 'RunFailed',
  /** On a WorkerPool whose autoscaler changed its recommendation. */
  PoolAutoscaled: 'PoolAutoscaled',
  /** On a Worker whose certificate was renewed (Normal). */
  WorkerCertificateRenewed: 'WorkerCertificateRenewed',
  /** On a Worker whose certificate renewal failed; the current certificate stays in use. */
  WorkerCertificateRenewalFailed: 'WorkerCertificateRenewalFailed',
  /** On a Worker whose credentials Secret exists but is not its own (another owner, or none). */
  WorkerSecretConflict: 'WorkerSecretConflict',
} as const;

/** `status.state` of a Worker. */
export const WORKER_STATES = ['Pending', 'Idle', 'Busy', 'Draining', 'Failed'] as const;
export type WorkerState = (typeof WORKER_STATES)[number];
