/**
 * A bounded window of outstanding JetStream publish acks, emptied in order.
 *
 * One producer (a fiber reading the input) sends messages while fewer than
 * `capacity` acks are outstanding; one consumer takes settled acks from the
 * head, in the order the messages were sent. Every publish promise gets its
 * handlers when it is created, so nothing is left unhandled when either side
 * is interrupted. No Effect is allocated per message: the sides only wait
 * (with `Effect.callback`) when the window is full or the head is pending.
 *
 * @internal
 */
import type { MsgHdrs, Payload } from "@nats-io/nats-core"
import { Effect, Result } from "effect"

/** The outcome of one message, in the order it was sent (with what it sent, to send it again). */
export interface Slot<A> {
  readonly index: number
  readonly subject: string
  readonly msgId: string | undefined
  readonly payload: Payload | undefined
  readonly headers: MsgHdrs | undefined
  /** 0 pending, 1 acked, 2 failed */
  state: 0 | 1 | 2
  value: A | undefined
  error: unknown
}

export class PublishWindow<A> {
  private readonly slots: Array<Slot<A> | undefined>
  private head = 0
  private size = 0
  private consumerWake: (() => void) | undefined = undefined
  private producerWake: (() => void) | undefined = undefined
  private settledWake: (() => void) | undefined = undefined
  private resumeWake: (() => void) | undefined = undefined
  /** Slots sent and not yet settled. */
  private pending = 0
  /** A message failed: the producer sends nothing more until `resume` (or ends at `stop`). */
  failed = false
  /** The failure is final: the producer ends. */
  stopped = false
  /** The input ended. */
  ended = false

  readonly capacity: number
  private readonly lowWater: number

  constructor(capacity: number) {
    this.capacity = capacity
    this.lowWater = Math.floor(capacity / 2)
    this.slots = new Array<Slot<A> | undefined>(capacity)
  }

  get isFull(): boolean {
    return this.size >= this.capacity
  }

  /** The oldest outstanding (or settled, not yet taken) message. */
  peek(): Slot<A> | undefined {
    return this.size === 0 ? undefined : this.slots[this.head]
  }

  shift(): void {
    this.slots[this.head] = undefined
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1
    this.size--
  }

  /** Opens a slot at the tail; the returned function settles it. */
  open(
    index: number,
    subject: string,
    msgId: string | undefined,
    payload: Payload | undefined,
    headers: MsgHdrs | undefined
  ): (result: Result.Result<A, unknown>) => void {
    const slot: Slot<A> = { index, subject, msgId, payload, headers, state: 0, value: undefined, error: undefined }
    this.push(slot)
    return this.settler(slot)
  }

  /** A failed slot, sent again: pending once more; the returned function settles it. */
  reopen(slot: Slot<A>): (result: Result.Result<A, unknown>) => void {
    slot.state = 0
    slot.error = undefined
    return this.settler(slot)
  }

  private settler(slot: Slot<A>): (result: Result.Result<A, unknown>) => void {
    this.pending++
    let settled = false
    return (result) => {
      if (settled) return
      settled = true
      if (Result.isSuccess(result)) {
        slot.state = 1
        slot.value = result.success
      } else {
        slot.state = 2
        slot.error = result.failure
        this.failed = true
      }
      if (--this.pending === 0) this.wake("settledWake")
      if (this.slots[this.head] === slot) this.wakeConsumer()
    }
  }

  /** Adds a message that failed before it was sent. */
  reject(index: number, subject: string, msgId: string | undefined, error: unknown): void {
    this.failed = true
    this.push({ index, subject, msgId, payload: undefined, headers: undefined, state: 2, value: undefined, error })
    if (this.size === 1) this.wakeConsumer()
  }

  /** Every slot from the head on, oldest first (to resend the failed ones, or read the late acks). */
  forEach(f: (slot: Slot<A>) => void): void {
    for (let i = 0; i < this.size; i++) {
      let at = this.head + i
      if (at >= this.capacity) at -= this.capacity
      const slot = this.slots[at]
      if (slot !== undefined) f(slot)
    }
  }

  /** After a retry sent the failed slots again: the producer sends again. */
  resume(): void {
    this.failed = false
    this.wake("resumeWake")
  }

  /** The failure is final: a producer waiting to resume ends. */
  stop(): void {
    this.stopped = true
    this.wake("resumeWake")
  }

  end(): void {
    this.ended = true
    this.wakeConsumer()
  }

  wakeConsumer(): void {
    this.wake("consumerWake")
  }

  private wake(which: "consumerWake" | "settledWake" | "resumeWake"): void {
    const wake = this[which]
    if (wake !== undefined) {
      this[which] = undefined
      wake()
    }
  }

  /** Called after taking acks: resumes a waiting producer once the window is half empty. */
  wakeProducer(): void {
    const wake = this.producerWake
    if (wake !== undefined && this.size <= this.lowWater) {
      this.producerWake = undefined
      wake()
    }
  }

  /** Waits until the head has settled, or, with no message outstanding, until the input ended. */
  readonly awaitHead: Effect.Effect<void> = Effect.callback<void>((resume) => {
    const head = this.peek()
    if (head === undefined ? this.ended : head.state !== 0) return resume(Effect.void)
    this.consumerWake = () => resume(Effect.void)
    return Effect.sync(() => {
      this.consumerWake = undefined
    })
  })

  /**
   * Waits until the window is at most half full, so that the producer sends
   * in bursts of at least half a window: nats.js writes what is sent in one
   * burst with one socket write (and the server answers in kind), while
   * refilling one slot per ack degrades into a write per message.
   */
  readonly awaitRoom: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.size <= this.lowWater) return resume(Effect.void)
    this.producerWake = () => resume(Effect.void)
    return Effect.sync(() => {
      this.producerWake = undefined
    })
  })

  /** Waits until no slot is pending (every ack in, or failed). */
  readonly awaitSettled: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.pending === 0) return resume(Effect.void)
    this.settledWake = () => resume(Effect.void)
    return Effect.sync(() => {
      this.settledWake = undefined
    })
  })

  /** Waits until the producer may send again (`resume`) or must end (`stop`). */
  readonly awaitResume: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (!this.failed || this.stopped) return resume(Effect.void)
    this.resumeWake = () => resume(Effect.void)
    return Effect.sync(() => {
      this.resumeWake = undefined
    })
  })

  private push(slot: Slot<A>): void {
    let tail = this.head + this.size
    if (tail >= this.capacity) tail -= this.capacity
    this.slots[tail] = slot
    this.size++
  }
}
