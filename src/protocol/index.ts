/**
 * The worker pool protocol (version 1), shared by the controller and the
 * reference backend. See docs/protocol.md.
 */
export * from './version.js';
export * from './ids.js';
export * from './base64.js';
export * from './json.js';
export * from './token.js';
export * from './keys.js';
export * from './topics.js';
export * from './messages.js';
export * from './registration.js';
export * from './client.js';
export * from './worker-connection.js';
