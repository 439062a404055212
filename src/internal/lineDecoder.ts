/**
 * Splits a byte stream into newline-terminated JSON documents.
 *
 * QEMU ends every QMP message with "\r\n" and JSON text never holds a raw newline (it is escaped
 * inside strings), so a line is exactly one message. Bytes are kept as chunks until a newline
 * arrives and decoded once per line, so a multi-byte character split across chunks is never
 * mangled and a long line costs one copy.
 *
 * @internal
 */
import * as ExactJson from "./exactJson.js"

/** What one call to {@link LineDecoder.push} produced. */
export type DecodeResult =
  | { readonly _tag: "Messages"; readonly messages: ReadonlyArray<unknown> }
  | {
    readonly _tag: "InvalidJson"
    readonly line: string
    readonly detail: string
    readonly messages: ReadonlyArray<unknown>
  }
  | { readonly _tag: "TooLong"; readonly bytes: number; readonly messages: ReadonlyArray<unknown> }

const NEWLINE = 0x0a
const emptyMessages: ReadonlyArray<unknown> = []
const utf8 = new TextDecoder("utf-8", { fatal: false })

/** How much of an offending line an error keeps, to show without flooding a log. */
const excerptLength = 200

const excerpt = (line: string): string =>
  line.length > excerptLength ? `${line.slice(0, excerptLength)}… (${line.length} chars)` : line

/**
 * Escapes control characters (C0, DEL, C1) and bidirectional overrides, so that a peer's bytes
 * quoted in an error or a log line cannot drive the terminal that shows it.
 */
export const printable = (text: string): string =>
  text.replace(
    /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`
  )

/**
 * A short, printable excerpt of a value a peer sent, for an error message. Never throws: a value
 * nested too deeply for `JSON.stringify` (a peer can send one) is described instead of printed.
 */
export const preview = (value: unknown, max = 200): string => {
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch {
    text = "a value nested too deeply to print"
  }
  return printable(text.length > max ? text.slice(0, max) + "..." : text)
}

/**
 * A streaming decoder: feed it chunks, get back the complete messages in order.
 * After it reports an error it must not be fed again: the connection is to be closed.
 */
export class LineDecoder {
  private pending: Array<Uint8Array> = []
  private pendingBytes = 0

  /** The length of each message of the last {@link push}'s result, in the same order. */
  readonly sizes: Array<number> = []

  constructor(readonly maxLineBytes: number) {}

  /** Bytes held for a line that has not ended yet. */
  get buffered(): number {
    return this.pendingBytes
  }

  push(chunk: Uint8Array): DecodeResult {
    let messages: Array<unknown> | undefined
    this.sizes.length = 0
    let start = 0
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start)
      if (newline === -1) {
        const rest = chunk.length - start
        if (this.pendingBytes + rest > this.maxLineBytes) {
          return this.tooLong(this.pendingBytes + rest, messages)
        }
        this.pending.push(start === 0 ? chunk : chunk.subarray(start))
        this.pendingBytes += rest
        break
      }
      if (this.pendingBytes + (newline - start) > this.maxLineBytes) {
        return this.tooLong(this.pendingBytes + (newline - start), messages)
      }
      const line = this.takeLine(chunk.subarray(start, newline))
      start = newline + 1
      const text = line.trim()
      if (text.length === 0) continue
      let message: unknown
      try {
        message = ExactJson.parse(text)
      } catch (error) {
        this.reset()
        return {
          _tag: "InvalidJson",
          line: excerpt(text),
          detail: error instanceof Error ? error.message : String(error),
          messages: messages ?? emptyMessages
        }
      }
      if (messages === undefined) messages = [message]
      else messages.push(message)
      this.sizes.push(text.length)
    }
    return { _tag: "Messages", messages: messages ?? emptyMessages }
  }

  private takeLine(tail: Uint8Array): string {
    if (this.pendingBytes === 0) return utf8.decode(tail)
    this.pending.push(tail)
    const whole = Buffer.concat(this.pending, this.pendingBytes + tail.length)
    this.reset()
    return utf8.decode(whole)
  }

  private tooLong(bytes: number, messages: Array<unknown> | undefined): DecodeResult {
    this.reset()
    return { _tag: "TooLong", bytes, messages: messages ?? emptyMessages }
  }

  private reset(): void {
    this.pending = []
    this.pendingBytes = 0
  }
}
