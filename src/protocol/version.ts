/**
 * The protocol versions this build speaks, oldest first. A pool token names
 * the version its backend speaks; version 2 gives new workers ECDSA P-256
 * keys instead of RSA-2048 ones (docs/protocol.md, "Versions").
 */
export const PROTOCOL_VERSIONS = [1, 2] as const;

export type ProtocolVersion = (typeof PROTOCOL_VERSIONS)[number];

/** The newest version: what the reference backend puts in new tokens unless told to speak version 1 only. */
export const LATEST_PROTOCOL_VERSION: ProtocolVersion = 2;

/**
 * The `version` of every MQTT message, in both protocol versions. Version 2
 * changed worker keys, not messages: keeping this at 1 is what lets a worker
 * registered under either version talk to a controller or backend of either.
 */
export const MESSAGE_VERSION = 1 as const;

/** The default first topic level, as in the real product. */
export const DEFAULT_TOPIC_NAMESPACE = 'spacelift';
