/**
 * nats.js consumer notifications as `ConsumerStatus` values.
 *
 * @internal
 */
import type { ConsumerNotification } from "@nats-io/jetstream"
import type { ConsumerStatus } from "../services/Consumer.ts"

/** The status of a notification, if it has one (`next` and pinning notifications have none). */
export const fromNotification = (n: ConsumerNotification): ConsumerStatus | undefined => {
  switch (n.type) {
    case "heartbeats_missed":
      return { _tag: "HeartbeatsMissed", count: n.count }
    case "consumer_not_found":
      return { _tag: "ConsumerNotFound", stream: n.stream, consumer: n.name, count: n.count }
    case "stream_not_found":
      return { _tag: "StreamNotFound", stream: n.name }
    case "consumer_deleted":
      return { _tag: "ConsumerDeleted", code: n.code, description: n.description }
    case "ordered_consumer_recreated":
      return { _tag: "OrderedConsumerRecreated", consumer: n.name }
    case "exceeded_limits":
      return { _tag: "ExceededLimits", code: n.code, description: n.description }
    case "discard":
      return { _tag: "Discard", messagesLeft: n.messagesLeft, bytesLeft: n.bytesLeft }
    case "reset":
      return { _tag: "Reset", consumer: n.name }
    case "no_responders":
      return { _tag: "NoResponders", code: n.code }
    case "heartbeat":
      return {
        _tag: "Heartbeat",
        lastConsumerSequence: n.lastConsumerSequence,
        lastStreamSequence: n.lastStreamSequence
      }
    case "flow_control":
      return { _tag: "FlowControl" }
    case "debug":
      return { _tag: "Debug", code: n.code, description: n.description }
    case "next":
    case "consumer_pinned":
    case "consumer_unpinned":
      return undefined
  }
}
