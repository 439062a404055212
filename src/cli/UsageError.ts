/**
 * A command line that `@effect/cli` parsed but that does not make sense as a whole.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"

/**
 * The command line did not make sense; `detail` says what to change.
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly detail: string }> {
  get message(): string {
    return `${this.detail} (see effect-qemu --help)`
  }
}
