// The bundled QMP surface is committed as .js + .d.ts (cheaper for every type check than one .ts
// file); tsc does not copy such files, so the build does.
import { copyFileSync, mkdirSync } from "node:fs"

mkdirSync("dist/generated", { recursive: true })
for (const file of ["qemu.js", "qemu.d.ts"]) copyFileSync(`src/generated/${file}`, `dist/generated/${file}`)
