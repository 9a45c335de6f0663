/**
 * What a subscription does when its bounded buffer is full.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * What a subscription does when its buffer is full (by message count or by
 * bytes). The server pushes and cannot be slowed down, so one of these must
 * happen:
 *
 * - `"fail"`: the stream fails with a `NatsError` of reason `SlowConsumer`
 *   (nothing is dropped silently; the subscription ends).
 * - `"dropNewest"`: the incoming message is dropped.
 * - `"dropOldest"`: the oldest buffered messages are dropped.
 *
 * Every policy reports a `SlowConsumer` connection event (logged as a warning)
 * when overflow starts, with the count of messages dropped so far.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Overflow = Schema.Literals(["fail", "dropNewest", "dropOldest"])

/**
 * What a subscription does when its buffer is full.
 *
 * @category models
 * @since 0.1.0
 */
export type Overflow = typeof Overflow.Type
