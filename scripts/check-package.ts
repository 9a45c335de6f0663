/**
 * Checks the built package (`npm run build` first) the way a user meets it:
 * every subpath export loads by the package's own name, every namespace of
 * the root has its subpath, and nothing reachable from a subpath other than
 * the embedded server's (`NatsServer`, `LocalNats`) imports
 * `node:child_process`, so that a production bundle need not include it.
 *
 *   npx node scripts/check-package.ts
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
const pkg = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as {
  readonly name: string
  readonly exports: Record<string, string | { readonly import: string }>
}
const problems: Array<string> = []
const serverOnly = new Set(["./NatsServer", "./LocalNats"])
/** Test kits: subpaths of their own, not namespaces of the root (which must not load a test runner). */
const testOnly = new Set(["./Conformance"])

/** The relative imports of a built module, resolved to files. */
const importsOf = (file: string): Array<string> => {
  const text = Fs.readFileSync(file, "utf8")
  const specifiers = [...text.matchAll(/(?:import|export)\s[^"']*?from\s*["']([^"']+)["']|import\(["']([^"']+)["']\)/g)]
    .map((m) => m[1] ?? m[2] ?? "")
  return specifiers.map((s) => s.startsWith(".") ? Path.resolve(Path.dirname(file), s) : s)
}

/** Every module reachable from `entry` through relative imports, with the bare imports they make. */
const reachable = (entry: string): Map<string, Array<string>> => {
  const seen = new Map<string, Array<string>>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    const imports = importsOf(file)
    seen.set(file, imports.filter((i) => !i.startsWith("/")))
    for (const i of imports) if (i.startsWith("/")) visit(i)
  }
  visit(entry)
  return seen
}

const rootIndex = await import(pkg.name) as Record<string, unknown>
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (subpath === "." || subpath === "./package.json" || typeof target === "string") continue
  const file = Path.join(root, target.import)
  if (!Fs.existsSync(file)) {
    problems.push(`${subpath}: ${target.import} was not built`)
    continue
  }
  const loaded = await import(`${pkg.name}/${subpath.slice(2)}`) as Record<string, unknown>
  if (Object.keys(loaded).length === 0) problems.push(`${subpath}: exports nothing`)
  if (testOnly.has(subpath)) {
    if (rootIndex[subpath.slice(2)] !== undefined) problems.push(`${subpath}: a test kit in the root export`)
  } else if (rootIndex[subpath.slice(2)] === undefined) problems.push(`${subpath}: not a namespace of the root export`)
  if (!serverOnly.has(subpath)) {
    for (const [module, bare] of reachable(file)) {
      if (bare.includes("node:child_process")) {
        problems.push(`${subpath}: ${Path.relative(root, module)} imports node:child_process`)
      }
    }
  }
}
for (const name of Object.keys(rootIndex)) {
  if (pkg.exports[`./${name}`] === undefined) problems.push(`root namespace ${name} has no subpath export`)
}

if (problems.length > 0) {
  console.error(problems.join("\n"))
  process.exit(1)
}
console.log(
  `package: ${
    Object.keys(pkg.exports).length - 2
  } subpath exports load; none but the server's imports node:child_process`
)
