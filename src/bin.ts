#!/usr/bin/env node
/**
 * The `effect-qemu` binary. The command line needs `@effect/cli`, `@effect/platform` and `@effect/platform-node`,
 * which the library itself does not: they are optional peers, and their absence is said plainly.
 *
 * @since 0.2.0
 */
try {
  const cli = await import("./cli.js")
  cli.run()
} catch (error) {
  const missing = (error as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND" &&
    /@effect\/(cli|platform|printer|typeclass)/.test(String((error as Error).message))
  if (!missing) throw error
  process.stderr.write(
    "effect-qemu: the command line needs @effect/cli, @effect/platform and @effect/platform-node; " +
      "install them beside effect-qemu: npm install @effect/cli @effect/platform @effect/platform-node\n"
  )
  process.exitCode = 1
}
