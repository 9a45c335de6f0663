/**
 * effect-nats: NATS messaging for Effect 4.
 *
 * @since 0.1.0
 */
export {}
