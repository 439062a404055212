// Every export docgen documents carries `@since` and `@category`. docgen itself fails on a missing
// `@since` but files an export without `@category` under "utils"; this check fails instead, naming
// the file, line and export. It reads the same files as docgen (srcDir minus docgen.json's exclude).
// `export * from` / `export * as X from` need `@since` only: docgen files them under "exports".
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"

const config = JSON.parse(fs.readFileSync("docgen.json", "utf8"))
const srcDir = config.srcDir ?? "src"
const exclude = config.exclude ?? []

// docgen.json's globs as regular expressions: `**` any path, `*` any name part.
const globToRegExp = (glob) =>
  new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*\*\/?|\*/g, (m) => m === "*" ? "[^/]*" : ".*")}$`)
const excludes = exclude.map(globToRegExp)
const excluded = (file) => excludes.some((pattern) => pattern.test(file))
const files = fs.readdirSync(srcDir, { recursive: true })
  .map((file) => path.join(srcDir, file))
  .filter((file) => file.endsWith(".ts") && !file.endsWith(".d.ts") && !excluded(file))
  .sort()

const isExported = (node) =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)

const nameOf = (node) => {
  if (ts.isVariableStatement(node)) return node.declarationList.declarations.map((d) => d.name.getText()).join(", ")
  if (ts.isExportDeclaration(node)) {
    return `export ${node.exportClause?.getText() ?? "*"} from ${node.moduleSpecifier.getText()}`
  }
  return node.name?.getText() ?? "(anonymous)"
}

// The tags of the doc comments right before a node, as docgen reads them (leading comments).
const tagsBefore = (source, node) => {
  const ranges = ts.getLeadingCommentRanges(source.text, node.getFullStart()) ?? []
  const docs = ranges.map((r) => source.text.slice(r.pos, r.end)).filter((text) => text.startsWith("/**"))
  return new Set(docs.flatMap((text) => [...text.matchAll(/@(\w+)/g)].map((m) => m[1])))
}

const problems = []
const check = (source, node, name, required) => {
  const tags = tagsBefore(source, node)
  if (tags.has("internal") || tags.has("ignore")) return
  const missing = required.filter((tag) => !tags.has(tag))
  if (missing.length > 0) {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart(source))
    problems.push(`${source.fileName}:${line + 1} ${name}: missing ${missing.map((t) => `@${t}`).join(", ")}`)
  }
}
const checkExport = (source, node, prefix) => {
  if (ts.isExportDeclaration(node) && node.exportClause && ts.isNamedExports(node.exportClause)) {
    for (const spec of node.exportClause.elements) check(source, spec, prefix + spec.name.text, ["since", "category"])
  } else if (ts.isExportDeclaration(node)) {
    check(source, node, prefix + nameOf(node), ["since"])
  } else {
    check(source, node, prefix + nameOf(node), ["since", "category"])
  }
}
const walk = (source, statements, prefix) => {
  for (const node of statements) {
    if (ts.isExportDeclaration(node) || ts.isExportAssignment(node) || isExported(node)) {
      checkExport(source, node, prefix)
    }
    if (ts.isModuleDeclaration(node) && isExported(node) && node.body && ts.isModuleBlock(node.body)) {
      walk(source, node.body.statements, `${prefix}${node.name.getText()}.`)
    }
  }
}
for (const file of files) {
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true)
  walk(source, source.statements, "")
}
if (problems.length > 0) {
  console.error(`check-doc-tags: ${problems.length} export(s) without @since or @category:\n${problems.join("\n")}`)
  process.exit(1)
}
console.log(`check-doc-tags: every export of ${files.length} module(s) has @since and @category`)
