/**
 * Docs are code: every ```ts block of README.md is written to `.readme/`
 * as a module (its `effect-nats` imports pointed at `src/`), all of them are
 * type-checked with the project's compiler options, and the blocks fenced
 * ```ts runnable are run (each must exit 0 within a minute; they start
 * their own embedded nats-server).
 *
 *   npx node scripts/check-readme.ts
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
const out = Path.join(root, ".readme")
const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
const pkg = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as {
  readonly exports: Record<string, string | { readonly import: string }>
}

/** `effect-nats` and its subpaths, as paths of `src/` relative to `.readme/`. */
const source = (specifier: string): string => {
  if (specifier === "effect-nats") return "../src/index.ts"
  const target = pkg.exports[`./${specifier.slice("effect-nats/".length)}`]
  if (target === undefined || typeof target === "string") {
    throw new Error(`README imports ${specifier}: no such subpath`)
  }
  return `../${target.import.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts")}`
}

const blocks = [...readme.matchAll(/^```ts( runnable)?\n([\s\S]*?)^```$/gm)].map((m, i) => ({
  file: Path.join(out, `block-${String(i + 1).padStart(2, "0")}.ts`),
  line: readme.slice(0, m.index).split("\n").length,
  runnable: m[1] !== undefined,
  code: (m[2] ?? "").replace(/from "(effect-nats(?:\/[A-Za-z]+)?)"/g, (_, s: string) => `from "${source(s)}"`)
}))

Fs.rmSync(out, { recursive: true, force: true })
Fs.mkdirSync(out)
for (const b of blocks) Fs.writeFileSync(b.file, `// README.md line ${b.line}\n${b.code}\nexport {}\n`)
Fs.writeFileSync(
  Path.join(out, "tsconfig.json"),
  JSON.stringify({ extends: "../tsconfig.json", compilerOptions: { noUnusedLocals: false }, include: ["*.ts"] })
)

const node = process.execPath
const tsc = spawnSync(node, [Path.join(root, "node_modules/typescript/bin/tsc"), "-p", out], {
  encoding: "utf8",
  cwd: root
})
if (tsc.status !== 0) {
  console.error(`README code blocks do not type-check:\n${tsc.stdout}${tsc.stderr}`)
  process.exit(1)
}

const env = { ...process.env }
delete env["NATS_URL"]
for (const b of blocks.filter((b) => b.runnable)) {
  const run = spawnSync(node, [b.file], { encoding: "utf8", cwd: root, env, timeout: 60_000 })
  if (run.status !== 0) {
    console.error(`README block at line ${b.line} failed (status ${run.status}):\n${run.stdout}${run.stderr}`)
    process.exit(1)
  }
}
console.log(`readme: ${blocks.length} code blocks type-check, ${blocks.filter((b) => b.runnable).length} run`)
