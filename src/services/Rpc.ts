/**
 * Typed request/reply: an endpoint pairs a subject with request, response and
 * error schemas; `call` sends a request and `serve` answers them. A handler's
 * typed failure reaches the caller as that typed error, not as a timeout.
 *
 * Wire format: payloads are encoded by the endpoint's codecs (JSON through
 * Schema by default). A typed failure is sent with the `Nats-Rpc-Error: 1`
 * header and the encoded error as payload. Anything else that goes wrong on
 * the responder (an undecodable request: 400; a defect or an unencodable
 * reply: 500) is sent with the `Nats-Service-Error` and
 * `Nats-Service-Error-Code` headers of NATS services and surfaces as a
 * `NatsError` with reason `ServiceError`.
 *
 * @since 0.1.0
 */
import type { Msg } from "@nats-io/nats-core"
import { headers as makeHeaders } from "@nats-io/nats-core"
import type { Fiber, Schema, Scope } from "effect"
import { Cause, Effect, Result } from "effect"
import { effectOf } from "../internal/userCode.ts"
import * as Codec from "../schemas/Codec.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { Reply, RequestOptions, ServeOptions } from "./NatsClient.ts"
import { NatsClient, serviceErrorReply } from "./NatsClient.ts"

/**
 * Header marking a reply whose payload is the endpoint's typed error.
 *
 * @category constants
 * @since 0.1.0
 */
export const RpcErrorHeader = "Nats-Rpc-Error"

/**
 * A typed request/reply endpoint.
 *
 * @category models
 * @since 0.1.0
 */
export interface Endpoint<Req, Res, Err> {
  readonly subject: string
  readonly request: Codec.Codec<Req>
  readonly response: Codec.Codec<Res>
  readonly error: Codec.Codec<Err> | undefined
  /**
   * Whether a reply without the `Nats-Rpc-Error` header may carry the typed
   * error in its body (see `EndpointOptions.errorInBody`).
   */
  readonly errorInBody: boolean
}

/**
 * Options of an endpoint.
 *
 * @category models
 * @since 0.1.0
 */
export interface EndpointOptions {
  /**
   * Responders that are not effect-nats (the article's Go service, say) put
   * their errors in the reply body, such as `{ "price": 0, "error": "..." }`,
   * without the `Nats-Rpc-Error` header. With `errorInBody`, `call` decodes a
   * reply without the header with the error schema first: a body it accepts
   * is the typed error, any other is decoded as the response. Give an error
   * schema that only error bodies satisfy (a required `error` field, say).
   * `serve` sends typed errors encoded by the error schema either way, with
   * the header, so both kinds of callers read them. Default `false`.
   */
  readonly errorInBody?: boolean | undefined
}

/**
 * Defines an endpoint from Schemas (encoded as JSON). `error` is optional;
 * without it the handler cannot fail with a typed error.
 *
 * @example
 * ```ts
 * class UnknownSku extends Schema.TaggedError<UnknownSku>()("UnknownSku", { sku: Schema.String }) {}
 * const PriceLookup = Rpc.make("pricing.lookup", {
 *   request: Schema.Struct({ sku: Schema.String }),
 *   response: Schema.Struct({ sku: Schema.String, cents: Schema.Int }),
 *   error: UnknownSku
 * })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <ReqA, ReqI, ResA, ResI, ErrA = never, ErrI = never>(
  subject: string,
  schemas: {
    readonly request: Schema.Codec<ReqA, ReqI>
    readonly response: Schema.Codec<ResA, ResI>
    readonly error?: Schema.Codec<ErrA, ErrI> | undefined
  },
  options?: EndpointOptions
): Endpoint<ReqA, ResA, ErrA> => ({
  subject,
  request: Codec.json(schemas.request),
  response: Codec.json(schemas.response),
  error: schemas.error === undefined ? undefined : Codec.json(schemas.error),
  errorInBody: options?.errorInBody === true
})

/**
 * Defines an endpoint from codecs (for non-JSON payloads).
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromCodecs = <Req, Res, Err = never>(subject: string, codecs: {
  readonly request: Codec.Codec<Req>
  readonly response: Codec.Codec<Res>
  readonly error?: Codec.Codec<Err> | undefined
}, options?: EndpointOptions): Endpoint<Req, Res, Err> => ({
  subject,
  // guarded: what a codec throws is a failure of that payload
  request: Codec.fromInput(codecs.request),
  response: Codec.fromInput(codecs.response),
  error: codecs.error === undefined ? undefined : Codec.fromInput(codecs.error),
  errorInBody: options?.errorInBody === true
})

/**
 * Calls an endpoint: encodes the request, waits for the reply, and decodes it.
 * Fails with the endpoint's typed error when the handler failed with it.
 * Traced by the request's `NatsClient.request` span (one span per call).
 *
 * @example
 * ```ts
 * const price = yield* Rpc.call(PriceLookup, { sku: "p-1" }, { timeout: "2 seconds" }).pipe(
 *   Effect.catchTag("UnknownSku", () => Effect.succeed({ sku: "p-1", cents: 0 }))
 * )
 * ```
 *
 * @category calling
 * @since 0.1.0
 */
export const call = <Req, Res, Err>(
  endpoint: Endpoint<Req, Res, Err>,
  request: Req,
  options?: RequestOptions
): Effect.Effect<Res, Err | NatsError.NatsError | Codec.EncodeError | Codec.DecodeError, NatsClient> =>
  NatsClient.use((client): Effect.Effect<Res, Err | NatsError.NatsError | Codec.EncodeError | Codec.DecodeError> => {
    const payload = endpoint.request.encode(request)
    if (Result.isFailure(payload)) return Effect.fail(Codec.withSubject(payload.failure, endpoint.subject))
    return Effect.flatMap(
      client.request(endpoint.subject, payload.success, options),
      (msg): Effect.Effect<Res, Err | NatsError.NatsError | Codec.DecodeError> => {
        if (endpoint.error !== undefined) {
          const marked = msg.headers?.get(RpcErrorHeader) === "1"
          if (marked || endpoint.errorInBody) {
            const error = endpoint.error.decode(msg.data)
            if (Result.isSuccess(error)) return Effect.fail(error.success)
            if (marked) return Effect.fail(Codec.withSubject(error.failure, endpoint.subject))
          }
        }
        const response = endpoint.response.decode(msg.data)
        return Result.isSuccess(response)
          ? Effect.succeed(response.success)
          : Effect.fail(Codec.withSubject(response.failure, endpoint.subject))
      }
    )
  })

const typedErrorReply = (payload: Uint8Array): Reply => {
  const h = makeHeaders()
  h.set(RpcErrorHeader, "1")
  return { data: payload, headers: h }
}

/**
 * The responder of an endpoint: decodes the request, runs the handler and
 * encodes its reply or typed error; an undecodable request is answered with
 * a 400 service error, an unencodable reply with a 500. Fails only with the
 * handler's untyped causes (defects), which `serve` answers with a 500.
 *
 * @internal
 */
export const responder = <Req, Res, Err, R>(
  endpoint: Endpoint<Req, Res, Err>,
  handler: (request: Req, msg: Msg) => Effect.Effect<Res, Err, R>
) => {
  const what = `the handler of ${endpoint.subject}`
  return (msg: Msg): Effect.Effect<Reply, Err, R> => {
    const request = endpoint.request.decode(msg.data)
    if (Result.isFailure(request)) {
      return Effect.as(
        Effect.logWarning(`nats: undecodable request on ${endpoint.subject}: ${request.failure.message}`),
        serviceErrorReply(400, `undecodable request: ${request.failure.message}`)
      )
    }
    return effectOf(what, () => handler(request.success, msg)).pipe(
      Effect.matchCauseEffect({
        onSuccess: (response) => {
          const encoded = endpoint.response.encode(response)
          return Result.isSuccess(encoded)
            ? Effect.succeed<Reply>(encoded.success)
            : Effect.as(
              Effect.logError(`nats: could not encode the reply on ${endpoint.subject}`, encoded.failure),
              serviceErrorReply(500, `could not encode the reply: ${encoded.failure.message}`)
            )
        },
        onFailure: (cause) => {
          const failure = Cause.findErrorOption(cause)
          if (failure._tag === "Some" && endpoint.error !== undefined) {
            const encoded = endpoint.error.encode(failure.value)
            if (Result.isSuccess(encoded)) return Effect.succeed(typedErrorReply(encoded.success))
          }
          return Effect.failCause(cause)
        }
      })
    )
  }
}

/**
 * Serves an endpoint until the scope closes (see `NatsClient.serve` for queue
 * groups and concurrency). Returns once the responder is registered on the
 * server; the returned fiber fails if the responder stops.
 *
 * @example
 * ```ts
 * yield* Rpc.serve(PriceLookup, ({ sku }) => lookup(sku), { queue: "pricing", concurrency: 8 })
 * ```
 *
 * @category serving
 * @since 0.1.0
 */
export const serve = <Req, Res, Err, R>(
  endpoint: Endpoint<Req, Res, Err>,
  handler: (request: Req, msg: Msg) => Effect.Effect<Res, Err, R>,
  options?: ServeOptions
): Effect.Effect<Fiber.Fiber<void, NatsError.NatsError>, NatsError.NatsError, NatsClient | Scope.Scope | R> =>
  NatsClient.use((client) => client.serve(endpoint.subject, responder(endpoint, handler), options))
