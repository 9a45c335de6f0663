/**
 * What the server reports about streams and consumers, in typed form:
 * `Duration`s, `Date`s, plain numbers (the server's zero time is kept as the
 * `Date` of that instant).
 *
 * @internal
 */
import type {
  ClusterInfo as NatsClusterInfo,
  ConsumerInfo as NatsConsumerInfo,
  SequenceInfo as NatsSequenceInfo,
  StreamInfo as NatsStreamInfo
} from "@nats-io/jetstream"
import { Duration } from "effect"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import * as StreamConfig from "../schemas/StreamConfig.ts"
import type { ClusterInfo, ConsumerInfo, SequenceInfo, StreamInfo } from "../services/JetStreamManager.ts"

const dateOf = (s: string | undefined): Date | undefined => {
  if (s === undefined) return undefined
  const d = new Date(s)
  return Number.isNaN(d.getTime()) ? undefined : d
}

const dateOrEpoch = (s: string | undefined): Date => dateOf(s) ?? new Date(0)

/** Where a stream or consumer lives (the server reports it when JetStream is clustered). */
const clusterFromNats = (cluster: NatsClusterInfo | undefined): ClusterInfo | undefined =>
  cluster === undefined ? undefined : {
    name: cluster.name,
    leader: cluster.leader === undefined || cluster.leader === "" ? undefined : cluster.leader,
    replicas: (cluster.replicas ?? []).map((peer) => ({
      name: peer.name,
      current: peer.current === true,
      offline: peer.offline === true,
      active: Duration.nanos(BigInt(Math.max(0, Math.trunc(peer.active ?? 0)))),
      lag: peer.lag ?? 0
    }))
  }

/** The typed form of a stream info read from the server. */
export const streamInfoFromNats = (info: NatsStreamInfo): StreamInfo => ({
  config: StreamConfig.fromNats(info.config),
  created: dateOrEpoch(info.created),
  state: {
    messages: info.state.messages,
    bytes: info.state.bytes,
    firstSeq: info.state.first_seq,
    firstTime: dateOrEpoch(info.state.first_ts),
    lastSeq: info.state.last_seq,
    lastTime: dateOrEpoch(info.state.last_ts),
    consumerCount: info.state.consumer_count,
    numDeleted: info.state.num_deleted ?? 0,
    numSubjects: info.state.num_subjects
  },
  cluster: clusterFromNats(info.cluster)
})

const sequenceFromNats = (s: NatsSequenceInfo | undefined): SequenceInfo => {
  // nats-server reports `last_active` as an RFC 3339 time (nats.js types it as nanos).
  const lastActive: unknown = s?.last_active
  return {
    consumerSeq: s?.consumer_seq ?? 0,
    streamSeq: s?.stream_seq ?? 0,
    lastActive: typeof lastActive === "string" ? dateOf(lastActive) : undefined
  }
}

/** The typed form of a consumer info read from the server. */
export const consumerInfoFromNats = (info: NatsConsumerInfo): ConsumerInfo => ({
  stream: info.stream_name,
  name: info.name,
  created: dateOrEpoch(info.created),
  config: ConsumerConfig.fromNats(info.config),
  delivered: sequenceFromNats(info.delivered),
  ackFloor: sequenceFromNats(info.ack_floor),
  numPending: info.num_pending,
  numAckPending: info.num_ack_pending,
  numRedelivered: info.num_redelivered,
  numWaiting: info.num_waiting,
  pushBound: info.push_bound ?? false,
  cluster: clusterFromNats(info.cluster)
})
