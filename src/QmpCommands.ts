/**
 * The typed QMP surface: which commands and events exist, what they take and what they return.
 *
 * The maps start empty and are filled by declaration merging from a generated module
 * (see `npm run codegen`). A command missing from the map is still callable, untyped.
 *
 * @since 0.1.0
 */

/**
 * Command name to `{ args; return }`. Augment it with `declare module "effect-qemu/QmpCommands"`.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpCommandMap {}

/**
 * Event name to the type of its `data` member. Augment it like {@link QmpCommandMap}.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpEventMap {}

/**
 * The arguments object a command takes: typed for a known command, a free-form record otherwise.
 *
 * @since 0.1.0
 * @category models
 */
export type CommandArgs<K extends string> = K extends keyof QmpCommandMap
  ? QmpCommandMap[K] extends { readonly args: infer A } ? A : never
  : Record<string, unknown> | undefined

/**
 * What a command's reply carries in `return`: typed for a known command, `unknown` otherwise.
 *
 * @since 0.1.0
 * @category models
 */
export type CommandReturn<K extends string> = K extends keyof QmpCommandMap
  ? QmpCommandMap[K] extends { readonly return: infer R } ? R : unknown
  : unknown

/**
 * The `data` member of an event: typed for a known event, a free-form record otherwise.
 *
 * @since 0.1.0
 * @category models
 */
export type EventData<K extends string> = K extends keyof QmpEventMap ? QmpEventMap[K]
  : Record<string, unknown> | undefined

/**
 * The argument positions of `execute`: `args` may be left out when the command takes none or
 * all of its arguments are optional.
 *
 * @since 0.1.0
 * @category models
 */
export type ExecuteParams<K extends string, Options> = [CommandArgs<K>] extends [undefined | void]
  ? [args?: undefined, options?: Options]
  : {} extends CommandArgs<K> ? [args?: CommandArgs<K>, options?: Options]
  : [args: CommandArgs<K>, options?: Options]
