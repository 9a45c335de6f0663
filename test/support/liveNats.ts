import { Clock, Layer } from "effect"
import { LocalNats } from "../../src/index.ts"

/**
 * A server and a client on real time, for suites that move a `TestClock`
 * (Effect's own store suites do): the layer is built with the live `Clock`.
 */
export const liveNats = (options?: LocalNats.LocalNatsOptions) =>
  LocalNats.layer(options).pipe(Layer.provide(Layer.succeed(Clock.Clock, Clock.Clock.defaultValue())))
