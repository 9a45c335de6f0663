/**
 * NATS services (the "micro" protocol of every official client): a named,
 * versioned service whose endpoints are responders in a queue group, and
 * which answers discovery on `$SRV.PING|INFO|STATS` (all services, every
 * instance of one name, or one instance by id) with its identity, its
 * endpoints and their counters. `@nats-io/services` clients and the `nats`
 * CLI (`nats micro ls|info|stats`) see it; `ServiceClient` discovers any.
 *
 * Endpoints are typed `Rpc` endpoints (`Service.rpc`: request, response and
 * error schemas) or plain handlers (`Service.endpoint`); `Service.group`
 * puts plain endpoints under a subject prefix. Each runs as a
 * `NatsClient.serve` responder: its own queue group (the service's by
 * default, `"q"`), bounded concurrency and buffer, failures answered with
 * the `Nats-Service-Error` headers.
 *
 * Stats are exact: every request answered counts once, with its handling
 * time; an error is a handler that failed or died, a typed `Rpc` error, or a
 * reply with the service error headers; `lastError` is the latest one's
 * message.
 *
 * Closing the scope stops the service gracefully: intake stops, requests
 * already received are answered (within `gracePeriod`), and then it leaves
 * discovery.
 *
 * @since 0.1.0
 */
import type { Msg } from "@nats-io/nats-core"
import { nuid } from "@nats-io/nats-core"
import type { Duration } from "effect"
import { Cause, Effect, Exit, Layer, Schema, Scope } from "effect"
import { invalidArgument } from "../internal/errors.ts"
import * as Headers from "../schemas/Headers.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import * as ServiceInfo from "../schemas/ServiceInfo.ts"
import type { Reply } from "./NatsClient.ts"
import { NatsClient } from "./NatsClient.ts"
import * as Rpc from "./Rpc.ts"

/**
 * Options of an endpoint.
 *
 * @category models
 * @since 0.1.0
 */
export interface EndpointOptions {
  /** The subject (plain endpoints; default: the endpoint's name; under its group's prefix, if any). */
  readonly subject?: string | undefined
  /** Queue group. Default: the service's. */
  readonly queue?: string | undefined
  /** Shown by `$SRV.INFO`. */
  readonly metadata?: Readonly<Record<string, string>> | undefined
  /** Requests handled at once. Default 1. */
  readonly concurrency?: number | undefined
  /** Requests buffered before handling. Default 1024; when full, requests are dropped (callers time out). */
  readonly bufferSize?: number | undefined
}

/**
 * An endpoint of a service, made by `endpoint` or `rpc`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Endpoint<R> {
  readonly name: string
  readonly subject: string
  /** Whether `group` prefixes the subject (plain endpoints; a typed endpoint keeps its `Rpc` subject). */
  readonly relative: boolean
  readonly options: EndpointOptions
  /** Answers one request; `typedError` records a typed failure's message in the stats. */
  readonly handle: (msg: Msg, typedError: (message: string) => void) => Effect.Effect<Reply | void, unknown, R>
}

/**
 * A plain endpoint: the handler gets the request message and returns the
 * reply. A failure or defect is answered with a 500 service error.
 *
 * @example
 * ```ts
 * Service.endpoint("echo", (msg) => Effect.succeed(msg.data))
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const endpoint = <E, R>(
  name: string,
  handler: (msg: Msg) => Effect.Effect<Reply | void, E, R>,
  options?: EndpointOptions
): Endpoint<R> => ({
  name,
  subject: options?.subject ?? name,
  relative: true,
  options: options ?? {},
  handle: handler
})

/**
 * A typed endpoint: `Rpc.call` calls it. Its subject is the `Rpc.Endpoint`'s
 * (a group does not prefix it); a typed failure counts as an error.
 *
 * @example
 * ```ts
 * Service.rpc("lookup", PriceLookup, ({ sku }) => prices.lookup(sku), { concurrency: 8 })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const rpc = <Req, Res, Err, R>(
  name: string,
  definition: Rpc.Endpoint<Req, Res, Err>,
  handler: (request: Req, msg: Msg) => Effect.Effect<Res, Err, R>,
  options?: Omit<EndpointOptions, "subject">
): Endpoint<R> => ({
  name,
  subject: definition.subject,
  relative: false,
  options: options ?? {},
  handle: (msg, typedError) =>
    Rpc.responder(
      definition,
      (request: Req, m: Msg) =>
        Effect.tapError(handler(request, m), (error) => Effect.sync(() => typedError(describe(error))))
    )(msg)
})

/**
 * Plain endpoints under a subject prefix (`group("pricing", [endpoint("lookup", ...)])`
 * serves `pricing.lookup`; an endpoint's own `subject` goes under the prefix
 * too, as with nats.js' groups), with the group's queue group unless an
 * endpoint names its own. Groups nest; typed endpoints keep their subject.
 *
 * @category constructors
 * @since 0.1.0
 */
export const group = <R>(
  prefix: string,
  endpoints: ReadonlyArray<Endpoint<R>>,
  options?: { readonly queue?: string | undefined }
): ReadonlyArray<Endpoint<R>> =>
  endpoints.map((e) => ({
    ...e,
    subject: e.relative ? `${prefix}.${e.subject}` : e.subject,
    options: e.options.queue === undefined && options?.queue !== undefined
      ? { ...e.options, queue: options.queue }
      : e.options
  }))

/**
 * Options of a service.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServiceOptions<R> {
  /** Letters, digits, `-` and `_`. */
  readonly name: string
  /** A semantic version (`1.0.0`, `2.1.0-rc.1`). */
  readonly version: string
  readonly description?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
  /** The endpoints' queue group. Default `"q"` (the protocol's). */
  readonly queue?: string | undefined
  readonly endpoints: ReadonlyArray<Endpoint<R>>
  /** When the scope closes, how long requests already received are still answered. Default 10 seconds. */
  readonly gracePeriod?: Duration.Input | undefined
}

/**
 * A running service instance.
 *
 * @category models
 * @since 0.1.0
 */
export interface Service {
  /** This instance's id (unique, as discovery reports it). */
  readonly id: string
  readonly name: string
  readonly version: string
  readonly ping: ServiceInfo.Ping
  readonly info: ServiceInfo.Info
  /** The counters now. */
  readonly stats: Effect.Effect<ServiceInfo.Stats>
  /** Zeroes the counters (and `started` becomes now). */
  readonly reset: Effect.Effect<void>
}

const namePattern = /^[-\w]+$/
// semver.org's grammar
const semver =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/

const describe = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const { _tag, message } = error as { readonly _tag?: unknown; readonly message?: unknown }
    if (typeof message === "string" && message !== "") return typeof _tag === "string" ? `${_tag}: ${message}` : message
    if (typeof _tag === "string") return _tag
  }
  return String(error)
}

const validate = <R>(options: ServiceOptions<R>): NatsError.NatsError | undefined => {
  const op = "Service.make"
  if (!namePattern.test(options.name)) {
    return invalidArgument(op, `service name must be letters, digits, '-' or '_', got ${JSON.stringify(options.name)}`)
  }
  if (!semver.test(options.version)) {
    return invalidArgument(op, `version must be a semantic version, got ${JSON.stringify(options.version)}`)
  }
  if (options.endpoints.length === 0) return invalidArgument(op, "a service needs at least one endpoint")
  const names = new Set<string>()
  for (const e of options.endpoints) {
    if (!namePattern.test(e.name)) {
      return invalidArgument(op, `endpoint name must be letters, digits, '-' or '_', got ${JSON.stringify(e.name)}`)
    }
    if (names.has(e.name)) return invalidArgument(op, `two endpoints are named ${e.name}`)
    names.add(e.name)
  }
  return undefined
}

class Counters {
  requests = 0
  errors = 0
  nanos = 0
  lastError: string | undefined = undefined
  error(message: string) {
    this.errors++
    this.lastError = message
  }
  reset() {
    this.requests = 0
    this.errors = 0
    this.nanos = 0
    this.lastError = undefined
  }
}

/** What a reply tells of an error: its service error headers. */
const replyError = (reply: Reply | void): string | undefined => {
  if (reply === undefined || typeof reply === "string" || reply instanceof Uint8Array || reply.headers === undefined) {
    return undefined
  }
  const failed = Headers.serviceErrorOf(Headers.fromInit(reply.headers))
  return failed === undefined ? undefined : failed.message
}

/** The endpoint's handler, counted: every request once, with its time and whether it failed. */
const counted = <R>(e: Endpoint<R>, counters: Counters) => (msg: Msg) => {
  const started = performance.now()
  let typed: string | undefined
  return Effect.onExit(
    e.handle(msg, (message) => typed = message),
    (exit) =>
      Effect.sync(() => {
        counters.requests++
        counters.nanos += Math.round((performance.now() - started) * 1e6)
        if (Exit.isSuccess(exit)) {
          const failed = typed ?? replyError(exit.value)
          if (failed !== undefined) counters.error(failed)
        } else if (!Cause.hasInterruptsOnly(exit.cause)) {
          counters.error(describe(Cause.squash(exit.cause)))
        }
      })
  )
}

const json = <S extends Schema.Top>(schema: S) => {
  const encode = Schema.encodeSync(schema as unknown as Schema.Codec<S["Type"], unknown>)
  return (value: S["Type"]): string => JSON.stringify(encode(value))
}
const pingJson = json(ServiceInfo.Ping)
const infoJson = json(ServiceInfo.Info)
const statsJson = json(ServiceInfo.Stats)

/**
 * Starts a service instance in the current scope: its endpoints, then its
 * discovery responders. Returns once all are registered on the server.
 *
 * @example
 * ```ts
 * const pricing = yield* Service.make({
 *   name: "pricing",
 *   version: "1.0.0",
 *   endpoints: [Service.rpc("lookup", PriceLookup, ({ sku }) => lookup(sku), { concurrency: 8 })]
 * })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fn("Service.make")(function*<R>(
  options: ServiceOptions<R>
): Effect.fn.Return<Service, NatsError.NatsError, NatsClient | Scope.Scope | R> {
  const invalid = validate(options)
  if (invalid !== undefined) return yield* invalid
  const client = yield* NatsClient
  const id = nuid.next()
  let started = new Date().toISOString()
  const queue = options.queue ?? "q"
  const metadata = { ...options.metadata }
  const identity = { name: options.name, id, version: options.version, metadata }
  const endpoints = options.endpoints.map((e) => ({ e, counters: new Counters() }))
  const endpointInfo = (e: Endpoint<R>) => ({
    name: e.name,
    subject: e.subject,
    queueGroup: e.options.queue ?? queue,
    metadata: { ...e.options.metadata }
  })
  const ping: ServiceInfo.Ping = { type: ServiceInfo.ResponseType.ping, ...identity }
  const info: ServiceInfo.Info = {
    type: ServiceInfo.ResponseType.info,
    ...identity,
    description: options.description ?? "",
    endpoints: options.endpoints.map(endpointInfo)
  }
  const statsNow = (): ServiceInfo.Stats => ({
    type: ServiceInfo.ResponseType.stats,
    ...identity,
    started,
    endpoints: endpoints.map(({ counters: c, e }) => {
      return {
        ...endpointInfo(e),
        numRequests: c.requests,
        numErrors: c.errors,
        ...(c.lastError === undefined ? {} : { lastError: c.lastError }),
        processingTime: c.nanos,
        averageProcessingTime: c.requests === 0 ? 0 : Math.round(c.nanos / c.requests)
      }
    })
  })

  // discovery first, so that it is released last: the endpoints stop (and answer what they hold) before
  const answers = { PING: () => pingJson(ping), INFO: () => infoJson(info), STATS: () => statsJson(statsNow()) }
  for (const [verb, answer] of Object.entries(answers)) {
    for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${options.name}`, `$SRV.${verb}.${options.name}.${id}`]) {
      yield* client.serve(subject, () => Effect.sync(answer))
    }
  }
  // each endpoint in a scope of its own, all closed at once: intake stops everywhere together, and
  // the grace period is the service's, not one per endpoint
  const scope = yield* Effect.scope
  const scopes: Array<Scope.Closeable> = []
  yield* Effect.addFinalizer((exit) =>
    Effect.forEach(scopes, (s) => Scope.close(s, exit), { concurrency: "unbounded" })
  )
  for (const { counters, e } of endpoints) {
    const own = yield* Scope.fork(scope)
    scopes.push(own)
    yield* client.serve(e.subject, counted(e, counters), {
      queue: e.options.queue ?? queue,
      concurrency: e.options.concurrency,
      bufferSize: e.options.bufferSize,
      gracePeriod: options.gracePeriod
    }).pipe(Scope.provide(own))
  }
  return {
    id,
    name: options.name,
    version: options.version,
    ping,
    info,
    stats: Effect.sync(statsNow),
    reset: Effect.sync(() => {
      // as nats.js: the counters start again, from now
      started = new Date().toISOString()
      endpoints.forEach(({ counters }) => counters.reset())
    })
  }
})

/**
 * A layer that runs a service for the layer's lifetime.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <R>(options: ServiceOptions<R>): Layer.Layer<never, NatsError.NatsError, NatsClient | R> =>
  Layer.effectDiscard(make(options))
