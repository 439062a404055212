/**
 * Cutting console output into lines.
 *
 * @internal
 */

/**
 * Splits output into lines on "\n", without the "\r"s that end them, holding at most `maxLength`
 * characters of an unfinished line: a longer line is emitted in pieces of `maxLength` characters
 * (UTF-16 code units) as it arrives. A line's pieces are what `maxLength`-sized slices of the whole
 * line would be; an empty line is `""`; an unfinished line is emitted by `end`. Bytes are decoded as
 * UTF-8 across chunk boundaries.
 */
export class LineSplitter {
  private decoder = new TextDecoder("utf-8")
  /** The unfinished line, without the "\r"s at its end. */
  private body = ""
  /** How many "\r"s end the unfinished line so far: dropped if "\n" comes next, kept if text does. */
  private returns = 0
  /** Whether pieces of the unfinished line were emitted already. */
  private cut = false

  constructor(readonly maxLength: number) {}

  /** Forgets the unfinished line, then takes `start` as its beginning (text before it is not emitted). */
  restart(start: Uint8Array): void {
    this.decoder = new TextDecoder("utf-8")
    this.body = ""
    this.returns = 0
    this.cut = false
    this.push(start)
  }

  /** The lines (and pieces of long lines) that `chunk` completes. */
  push(chunk: Uint8Array): Array<string> {
    return this.take(this.decoder.decode(chunk, { stream: true }))
  }

  /** The rest: the unfinished line, if it holds more than "\r"s. */
  end(): Array<string> {
    const lines = this.take(this.decoder.decode())
    if (this.body.length > 0) lines.push(this.body)
    this.body = ""
    this.returns = 0
    this.cut = false
    return lines
  }

  private take(text: string): Array<string> {
    const lines: Array<string> = []
    let at = 0
    while (true) {
      const newline = text.indexOf("\n", at)
      this.append(newline === -1 ? text.slice(at) : text.slice(at, newline), lines)
      if (newline === -1) return lines
      if (this.body.length > 0 || !this.cut) lines.push(this.body)
      this.body = ""
      this.returns = 0
      this.cut = false
      at = newline + 1
    }
  }

  private append(piece: string, lines: Array<string>): void {
    if (piece.length === 0) return
    let end = piece.length
    while (end > 0 && piece.charCodeAt(end - 1) === 13) end--
    if (end > 0) {
      // "\r"s followed by text are part of the line
      this.body += "\r".repeat(this.returns) + (end === piece.length ? piece : piece.slice(0, end))
      this.returns = 0
    }
    this.returns += piece.length - end
    while (this.body.length > this.maxLength) {
      lines.push(this.body.slice(0, this.maxLength))
      this.body = this.body.slice(this.maxLength)
      this.cut = true
    }
  }
}
