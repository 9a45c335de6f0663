/**
 * An `RpcGroup` to serve over NATS in tests, examples and benchmarks: a
 * unary call with a typed error and an auth middleware, a finite stream, an
 * endless stream, a call that never returns, a defect, and a call that names
 * the instance that served it.
 */
import { Context, Deferred, Effect, Layer, Schema, Stream } from "effect"
import * as Headers from "effect/http/Headers"
import * as Rpc from "effect/rpc/Rpc"
import * as RpcGroup from "effect/rpc/RpcGroup"
import * as RpcMiddleware from "effect/rpc/RpcMiddleware"

export class User extends Schema.Class<User>("User")({ id: Schema.String, name: Schema.String }) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { id: Schema.String }) {}

class CurrentUser extends Context.Service<CurrentUser, { readonly name: string }>()("test/CurrentUser") {}

export class Auth extends RpcMiddleware.Service<Auth, { provides: CurrentUser }>()("test/Auth", {
  requiredForClient: true
}) {}

export const Users = RpcGroup.make(
  Rpc.make("GetUser", { payload: { id: Schema.String }, success: User, error: NotFound }),
  Rpc.make("CountTo", { payload: { n: Schema.Int, delayMs: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("Ticks", { success: Schema.Int, stream: true }),
  Rpc.make("Never"),
  Rpc.make("Boom"),
  Rpc.make("WhoServes", { success: Schema.String }),
  Rpc.make("Big", { payload: { bytes: Schema.Int }, success: Schema.String, stream: true }),
  Rpc.make("Gate", { success: Schema.String })
).middleware(Auth)

/** What the handlers of one instance did. */
export class Observed {
  emitted = 0
  readonly started = Deferred.makeUnsafe<void>()
  readonly interrupted = Deferred.makeUnsafe<void>()
  /** What `Gate` waits for. */
  readonly gate = Deferred.makeUnsafe<void>()
}

/** The server side of `Auth`: the caller's name from the `name` header. */
export const AuthServer = Layer.succeed(Auth)(
  Auth.of((effect, options) =>
    Effect.provideService(effect, CurrentUser, { name: options.headers.name ?? "anonymous" })
  )
)

/** The client side of `Auth`: every request names its caller. */
export const AuthClient = RpcMiddleware.layerClient(
  Auth,
  ({ next, request }) => next({ ...request, headers: Headers.set(request.headers, "name", "tester") })
)

/** The handlers of an instance called `instance`, reporting to `observed`. */
export const handlers = (instance: string, observed: Observed) =>
  Layer.merge(
    Users.toLayer({
      GetUser: ({ id }) =>
        id === "missing"
          ? Effect.fail(new NotFound({ id }))
          : Effect.map(CurrentUser, (user) => new User({ id, name: user.name })),
      CountTo: ({ delayMs, n }) =>
        Stream.range(1, n).pipe(
          Stream.tap(() => Effect.andThen(Deferred.succeed(observed.started, undefined), Effect.sleep(delayMs))),
          Stream.tap(() => Effect.sync(() => observed.emitted++))
        ),
      Ticks: () =>
        Stream.iterate(0, (n) => n + 1).pipe(
          Stream.tap(() => Effect.sync(() => observed.emitted++)),
          Stream.onStart(Deferred.succeed(observed.started, undefined)),
          // endless: it ends only when interrupted
          Stream.onExit(() => Deferred.succeed(observed.interrupted, undefined))
        ),
      Never: () =>
        Deferred.succeed(observed.started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.onInterrupt(() => Deferred.succeed(observed.interrupted, undefined))
        ),
      Boom: () => Effect.die("boom"),
      WhoServes: () => Effect.succeed(instance),
      Big: ({ bytes }) => Stream.make("x".repeat(bytes)),
      Gate: () =>
        Deferred.succeed(observed.started, undefined).pipe(
          Effect.andThen(Deferred.await(observed.gate)),
          Effect.as(instance)
        )
    }),
    AuthServer
  )
