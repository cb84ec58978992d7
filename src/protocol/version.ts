/** The protocol version this build speaks; carried in the pool token and in every message. */
export const PROTOCOL_VERSION = 1 as const;

/** The default first topic level, as in the real product. */
export const DEFAULT_TOPIC_NAMESPACE = 'spacelift';
