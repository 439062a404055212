#!/usr/bin/env bash
# Packs the library and uses it as a user would: installs the tarball into a fresh project beside
# effect 3.x (its peer), checks that exactly one copy of effect is installed, type-checks a program
# from the README under strict NodeNext and Bundler settings, and runs it against real QEMU, from an
# ES module and from CommonJS (require()). Then the command line: without its optional peers it
# says what to install; with them it runs, still beside one copy of effect.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/effect-qemu-check-XXXXXX")
trap 'rm -rf "$work"' EXIT

npm run build >/dev/null
tarball=$(npm pack --silent --pack-destination "$work" | tail -1)
# What the tarball holds: the build, the sources its maps point at, the helper, README, LICENSE.
# No tests, benchmarks, examples, docs, CI or changeset files, and no build scratch directories.
stray=$(tar tzf "$work/$tarball" | grep -E '^package/(test|bench|examples|docs|scripts|\.ci|\.changeset)/|/\.build/|\.test\.|/coverage/' || true)
if [ -n "$stray" ]; then
  echo "check:package: the tarball holds files no user needs:" >&2
  echo "$stray" >&2
  exit 1
fi
effect_version=$(node -p 'require("./node_modules/effect/package.json").version')
ts_version=$(node -p 'require("./node_modules/typescript/package.json").version')
package_version=$(node -p 'require("./package.json").version')
cli_packages=$(node -p '["@effect/cli", "@effect/platform", "@effect/platform-node"].map((name) => `${name}@${require(`./node_modules/${name}/package.json`).version}`).join(" ")')

cd "$work"
cat > package.json <<JSON
{ "name": "effect-qemu-user", "private": true, "type": "module" }
JSON
npm install --no-audit --no-fund --silent "./$tarball" "effect@$effect_version" "typescript@$ts_version" "@types/node@^20" >/dev/null

one_effect() {
  copies=$(find node_modules -path '*/effect/package.json' -not -path '*/@effect/*' | wc -l)
  if [ "$copies" != "1" ]; then
    echo "check:package: $copies copies of effect installed $1 (expected exactly one)" >&2
    find node_modules -path '*/effect/package.json' -not -path '*/@effect/*' >&2
    exit 1
  fi
}
one_effect "beside the library"

if missing=$(./node_modules/.bin/effect-qemu --version 2>&1); then
  echo "check:package: effect-qemu ran without @effect/cli installed: $missing" >&2
  exit 1
fi
if ! grep -q "npm install @effect/cli @effect/platform @effect/platform-node" <<<"$missing"; then
  echo "check:package: without the command line's packages, effect-qemu said: $missing" >&2
  exit 1
fi
echo "check:package: the command line without its packages says what to install"

mkdir -p src
cat > src/main.ts <<'TS'
import { Effect } from "effect"
import { Machine } from "effect-qemu"
import { QmpCommandUnavailable } from "effect-qemu/QmpError"
import { Assert } from "effect-qemu/testing"

const program = Effect.scoped(Effect.gen(function*() {
  const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
  const status = yield* vm.execute("query-status")
  const running: boolean = status.running
  yield* Assert.qmp(yield* vm.raw("query-status"), "return/running", true)
  yield* vm.executeAndWait("stop", { event: "STOP" })
  const error = yield* Effect.flip(vm.execute("no-such-command" as "query-status"))
  if (!(error instanceof QmpCommandUnavailable)) throw new Error(`expected QmpCommandUnavailable, got ${error._tag}`)
  return `QEMU ${vm.qmp.version} was ${status.status} (running: ${running}), then stopped`
}))

Effect.runPromise(program).then((line) => console.log(line))
TS
for resolution in NodeNext Bundler; do
  module=$([ "$resolution" = NodeNext ] && echo NodeNext || echo ESNext)
  cat > tsconfig.json <<JSON
{
  "compilerOptions": {
    "strict": true, "exactOptionalPropertyTypes": true, "noEmit": true, "skipLibCheck": false,
    "target": "ES2022", "module": "$module", "moduleResolution": "$resolution", "types": ["node"]
  },
  "include": ["src"]
}
JSON
  npx tsc -p tsconfig.json
  echo "check:package: type-checks under moduleResolution $resolution"
done

# The same program as a .cts file, which tsc under NodeNext compiles to require() calls: no CJS copy
# is shipped; Node's require() of ES modules (without flags since 20.19 and 22.12, the versions
# `engines` names) loads the ESM build. One compile emits both.
mkdir -p cjs
cp src/main.ts cjs/main.cts
cat > tsconfig.json <<JSON
{
  "compilerOptions": {
    "strict": true, "exactOptionalPropertyTypes": true, "target": "ES2022", "module": "NodeNext",
    "moduleResolution": "NodeNext", "rootDir": ".", "outDir": "out", "types": ["node"]
  },
  "include": ["src", "cjs"]
}
JSON
npx tsc -p tsconfig.json
node out/src/main.js
if node --input-type=module -e 'await import("effect-qemu/internal/timer")' 2>/dev/null; then
  echo "check:package: effect-qemu/internal/* is importable, and must not be" >&2
  exit 1
fi

# CommonJS: every public entry point is require()-able (no top-level await anywhere in its graph),
# internal/* is not, and the .cts program runs as CommonJS.
node -e '
const exported = Object.keys(require("effect-qemu/package.json").exports)
  .filter((key) => !key.includes("*") && key !== "./package.json")
for (const key of exported) require(key === "." ? "effect-qemu" : `effect-qemu${key.slice(1)}`)
console.log(`check:package: require() loads all ${exported.length} entry points under Node ${process.version}`)'
if node -e 'require("effect-qemu/internal/timer")' 2>/dev/null; then
  echo "check:package: effect-qemu/internal/* is require()-able, and must not be" >&2
  exit 1
fi
grep -q 'require("effect-qemu")' out/cjs/main.cjs || { echo "check:package: main.cts did not compile to require()" >&2; exit 1; }
node out/cjs/main.cjs

# shellcheck disable=SC2086
npm install --no-audit --no-fund --silent $cli_packages >/dev/null
one_effect "beside the library and the command line's packages"
version=$(./node_modules/.bin/effect-qemu --version)
if [ "$version" != "$package_version" ]; then
  echo "check:package: effect-qemu --version printed '$version', expected $package_version" >&2
  exit 1
fi
./node_modules/.bin/effect-qemu qmp --help | grep -q -- "--address" || {
  echo "check:package: effect-qemu qmp --help does not show --address" >&2
  exit 1
}
echo "check:package: effect-qemu $version runs with $cli_packages"
echo "check:package: ok ($tarball, effect $effect_version, import and require())"
