/**
 * The Key-Value calls made once per key and value, `get` (of a bucket that
 * allows direct gets) and `put`, sent through the connection's request mux
 * (`internal/requestMux`, and `internal/jsPublish` for the put) instead of
 * nats.js' `request`, which builds an `Error` per request to reject its
 * settled promise (a fifth of a `get`'s client CPU in the profiles). What
 * is sent and how the reply is read are nats.js' own: the subjects from the
 * bucket (its prefixes, a mirror's included), the value through its codec,
 * the reply read by its `DirectMsgImpl` and `smToEntry`. A bucket without
 * direct gets keeps nats.js' `get`; the writes with an expected revision
 * (`create`, `update`) keep nats.js' own.
 *
 * @internal
 */
import { DirectMsgImpl, JetStreamStatus } from "@nats-io/jetstream/internal"
import type { Bucket, KV, KvEntry } from "@nats-io/kv"
import { Effect, Result } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import { noResponders } from "./errors.ts"
import * as JsPublish from "./jsPublish.ts"
import type { RequestMux } from "./requestMux.ts"

/** What a direct get needs of the bucket (nats.js' `Bucket`, as far as it is read here). */
type Internals =
  & Pick<
    Bucket,
    "direct" | "encodeKey" | "subjectForKey" | "bucketName" | "codec" | "prefix" | "editPrefix" | "useJsPrefix"
  >
  & {
    readonly jsm: { readonly timeout?: number; getOptions(): { readonly apiPrefix?: string } }
    readonly js: { readonly timeout?: number; readonly apiPrefix?: string }
  }

/**
 * The entry of `key` (`null`: none, or the last message of its subject is
 * not its own), as nats.js' `get` reads it; `undefined` when the bucket has
 * no direct gets (then use nats.js' `get`).
 */
export const directGet = (
  kv: KV,
  mux: RequestMux,
  failed: (key: string, cause: unknown) => NatsError.NatsError
): ((key: string) => Effect.Effect<KvEntry | null, NatsError.NatsError>) | undefined => {
  const bucket = kv as unknown as Internals
  if (bucket.direct !== true) return undefined
  const prefix = `${bucket.jsm.getOptions().apiPrefix ?? "$JS.API"}.DIRECT.GET.${bucket.bucketName()}.`
  const timeout = bucket.jsm.timeout ?? 5000
  return (key) =>
    Effect.callback<KvEntry | null, NatsError.NatsError>((resume) => {
      let ek: string
      try {
        ek = bucket.encodeKey(key)
      } catch (cause) {
        return resume(Effect.fail(failed(key, cause)))
      }
      const subject = `${prefix}${bucket.subjectForKey(ek)}`
      const cancel = mux.send("KeyValue.get", subject, undefined, undefined, timeout, (outcome) => {
        switch (outcome._tag) {
          case "Reply": {
            try {
              const msg = outcome.msg
              if ((msg.headers?.code ?? 0) !== 0) {
                const status = new JetStreamStatus(msg)
                return resume(
                  status.isMessageNotFound() ? Effect.succeed(null) : Effect.fail(failed(key, status.toError()))
                )
              }
              const entry = (kv as unknown as Bucket).smToEntry(new DirectMsgImpl(msg))
              // the last message of the key's subject may be another key's (a wildcard-encoded key)
              return resume(Effect.succeed((entry as { readonly rawKey?: string }).rawKey === ek ? entry : null))
            } catch (cause) {
              return resume(Effect.fail(failed(key, cause)))
            }
          }
          case "NoResponders":
            return resume(Effect.fail(noResponders("KeyValue.get", subject)))
          case "Failed":
            return resume(Effect.fail(outcome.error))
        }
      })
      return Effect.sync(cancel)
    })
}

/**
 * A put: the new revision (nats.js' `put`, without its `request`);
 * `undefined` for a bucket written through another JetStream API (a mirror
 * of another domain's bucket: after "no responders" `internal/jsPublish`
 * would ask this one's API which stream captures the subject), which keeps
 * nats.js' `put`.
 */
export const put = (
  kv: KV,
  mux: RequestMux,
  jetstream: () => boolean,
  failed: (key: string, cause: unknown) => NatsError.NatsError
): ((key: string, value: Uint8Array) => Effect.Effect<number, NatsError.NatsError>) | undefined => {
  const bucket = kv as unknown as Internals
  if (bucket.useJsPrefix || (bucket.editPrefix !== "" && bucket.editPrefix !== bucket.prefix)) return undefined
  const timeout = bucket.js.timeout ?? 5000
  const target: JsPublish.Target = {
    mux,
    operation: "KeyValue.put",
    apiPrefix: bucket.js.apiPrefix ?? "$JS.API",
    jetstream
  }
  return (key, value) =>
    Effect.callback<number, NatsError.NatsError>((resume) => {
      let subject: string
      let data: Uint8Array
      try {
        subject = bucket.subjectForKey(bucket.encodeKey(key), true)
        data = bucket.codec.value.encode(value)
      } catch (cause) {
        return resume(Effect.fail(failed(key, cause)))
      }
      const cancel = JsPublish.send(target, subject, data, undefined, timeout, (result) =>
        resume(Result.isSuccess(result) ? Effect.succeed(result.success.seq) : Effect.fail(result.failure)))
      return Effect.sync(cancel)
    })
}
