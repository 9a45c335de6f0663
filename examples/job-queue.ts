/**
 * A background job queue on Effect's `PersistedQueue`, stored in JetStream
 * (`NatsPersistedQueue`): jobs offered with an id (offering one again is a
 * no-op), two workers sharing them, a job that fails once and is retried
 * after the retry schedule's delay, and one that always fails and is
 * dead-lettered after `maxAttempts`.
 *
 * Run: npm run example -- job-queue
 */
import { Effect, Fiber, Layer, Schedule, Schema } from "effect"
import { PersistedQueue } from "effect/persistence"
import { LocalNats, NatsPersistedQueue } from "../src/index.ts"

export const Thumbnail = Schema.Struct({ image: Schema.String, width: Schema.Int })

/** What happened to each job: the attempts it took, and whether it was done. */
export interface Report {
  readonly attempts: Record<string, number>
  readonly done: Array<string>
}

export const program = Effect.gen(function*() {
  const queue = yield* PersistedQueue.make({
    name: "thumbnails",
    schema: Thumbnail,
    maxAttempts: 3,
    retrySchedule: Schedule.spaced("200 millis")
  })
  const jobs = ["cat.png", "dog.png", "flaky.png", "broken.png", "owl.png"]
  for (const image of jobs) yield* queue.offer({ image, width: 128 }, { id: `thumb-${image}` })
  // a duplicate (a retried request, a replayed event): ignored by id
  yield* queue.offer({ image: "cat.png", width: 128 }, { id: "thumb-cat.png" })

  const report: Report = { attempts: {}, done: [] }
  const render = (job: typeof Thumbnail.Type, { attempts }: { readonly attempts: number }) =>
    Effect.gen(function*() {
      report.attempts[job.image] = attempts
      if (job.image === "broken.png") return yield* Effect.fail(`cannot decode ${job.image}`)
      if (job.image === "flaky.png" && attempts === 1) return yield* Effect.fail("the image service timed out")
      report.done.push(job.image)
      yield* Effect.log(`rendered ${job.image} at ${job.width}px (attempt ${attempts})`)
    })
  const worker = (name: string) =>
    queue.take(render).pipe(
      Effect.catch((error) => Effect.logWarning(`${name}: ${String(error)}`)),
      Effect.forever,
      Effect.forkChild
    )
  const workers = [yield* worker("worker-1"), yield* worker("worker-2")]
  // four jobs get done; broken.png fails three times and is dead-lettered
  yield* Effect.sleep("50 millis").pipe(
    Effect.repeat({ until: () => report.done.length === 4 && report.attempts["broken.png"] === 3 }),
    Effect.timeout("20 seconds")
  )
  yield* Effect.forEach(workers, Fiber.interrupt)
  yield* Effect.log(`done: ${report.done.sort().join(", ")}; attempts: ${JSON.stringify(report.attempts)}`)
  return report
})

/** The queue factory on the NATS store, on a client of an embedded server (or NATS_URL). */
export const QueueLayer = PersistedQueue.layer.pipe(
  Layer.provide(NatsPersistedQueue.layerStore({ stream: "JOBS", subjectPrefix: "jobs", bucket: "jobs" }))
)

export const main = program.pipe(Effect.provide(QueueLayer.pipe(Layer.provide(LocalNats.layerConfig()))))
