/**
 * A QEMU virtual machine as a scoped resource: launched with a QMP monitor and, if asked, a
 * serial console; shut down gracefully (with a fallback to a hard kill) when its scope closes,
 * on every path: success, failure, interruption.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as EffectConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Console from "./Console.js"
import * as GuestAgent from "./GuestAgent.js"
import { baseArgs, ChildFds, guestAgentArgs } from "./internal/commandLine.js"
import { disabledQmp } from "./internal/disabled.js"
import { fdArgs } from "./internal/fdArgs.js"
import { launchTurn } from "./internal/launchTurns.js"
import type { StopLevel } from "./internal/machineStop.js"
import { Stopper } from "./internal/machineStop.js"
import * as Metering from "./internal/metering.js"
import { listenForMonitor } from "./internal/monitorListener.js"
import { parentDeathWrapper } from "./internal/parentDeath.js"
import { spawnDirect, spawner } from "./internal/spawner.js"
import { logFile, machineDir } from "./internal/tempDir.js"
import * as Timer from "./internal/timer.js"
import { withHotSpan } from "./internal/tracing.js"
import { readPorts, refusedNetwork } from "./internal/usernet.js"
import type { MachineConfigInput, ResolvedConfig } from "./MachineConfig.js"
import * as MachineConfig from "./MachineConfig.js"
import { AbnormalShutdown, formatCommandLine, LaunchError, MachineConfigError } from "./MachineError.js"
import type { ExitStatus, QemuProcessService } from "./QemuProcess.js"
import * as QemuProcess from "./QemuProcess.js"
import * as Qmp from "./Qmp.js"
import type { QmpClient } from "./Qmp.js"
import type { QmpEvent } from "./QmpMessage.js"
import * as Wait from "./Wait.js"

export type {
  /**
   * Re-exported from `MachineConfig`: what `make` and `layer` accept.
   *
   * @since 0.1.0
   * @category models
   */
  MachineConfigInput
} from "./MachineConfig.js"

/**
 * Options of `shutdown`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ShutdownOptions {
  /** How long `quit` plus the wait for exit may take. Default: the machine's `shutdownTimeout`. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Skip the graceful path: SIGKILL at once (no warning is logged for it). */
  readonly hard?: boolean | undefined
}

/**
 * A launched machine.
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineService {
  readonly name: string
  readonly pid: number
  /** The full command line QEMU was started with, wrapper included. */
  readonly commandLine: ReadonlyArray<string>
  /**
   * The configuration the machine was made from, as given, with its `name` filled in: extend it
   * with `MachineConfig.extend` and launch again (see {@link relaunch}).
   *
   * @since 0.2.0
   */
  readonly config: MachineConfigInput
  /**
   * The machine's private directory (mode 0700), created the first time it is read (or at launch
   * when the QMP monitor's default UNIX socket goes there) and removed when the machine is
   * released. Read after the release, it names the directory without creating it. QEMU's log is
   * not kept there: see `log` and `process.logPath`.
   */
  readonly tempDir: string
  /** The process service underneath. */
  readonly process: QemuProcessService
  /** The QMP client. With `qmp: false` every call fails with `QmpDisconnected`. */
  readonly qmp: QmpClient
  /** The serial console. Without a `console` in the config every call fails with `ConsoleClosed`. */
  readonly console: Console.ConsoleService
  /**
   * The guest agent client (with `guestAgent: true`). Without it every call fails with
   * `GuestAgentUnavailable`.
   *
   * @since 0.2.0
   */
  readonly guestAgent: GuestAgent.GuestAgentService
  /**
   * The host port on 127.0.0.1 that forwards to each guest TCP port of the config's `ports`, e.g.
   * `ports.get(22)`; empty without `ports`. QEMU bound each one itself, so it is free and stays
   * the machine's until QEMU exits.
   *
   * @since 0.2.0
   */
  readonly ports: ReadonlyMap<number, number>
  /** Shorthands for the QMP client's operations. */
  readonly execute: QmpClient["execute"]
  readonly raw: QmpClient["raw"]
  readonly waitEvent: QmpClient["waitEvent"]
  readonly waitEvents: QmpClient["waitEvents"]
  readonly executeAndWait: QmpClient["executeAndWait"]
  readonly events: QmpClient["events"]
  /** Takes the events received and not yet waited for (Python's `QEMUMachine.get_qmp_events`). */
  readonly takeEvents: QmpClient["takeEvents"]
  /** The next event whatever its name, waiting for one (see `Qmp.nextEvent`). */
  readonly nextEvent: QmpClient["nextEvent"]
  /** Waits for at least one event, then takes them all (Python's `get_qmp_events(wait=True)`). */
  readonly nextEvents: QmpClient["nextEvents"]
  /** Runs an HMP command line and returns its text output (`human-monitor-command`). */
  readonly hmp: QmpClient["hmp"]
  /**
   * Passes an open descriptor to the running QEMU under `name` (QMP `getfd`); `closefd` with
   * the same name releases it.
   */
  readonly sendFd: (fd: number, name: string) => Effect.Effect<void, Qmp.FdError>
  /**
   * Shuts the machine down: `quit` (SIGTERM when there is no QMP session), then wait for QEMU
   * to exit, and say how it ended. If either fails or the timeout elapses, QEMU is killed and the
   * result is `AbnormalShutdown`. Idempotent: later calls return the first call's outcome. With
   * `hard: true` during a graceful shutdown, the kill happens at once. A timeout that is no
   * positive duration is a `ConfigError`.
   */
  readonly shutdown: (options?: ShutdownOptions) => Effect.Effect<MachineExit, AbnormalShutdown | MachineConfigError>
  /**
   * Kills QEMU at once (SIGKILL to its process group, so a forking wrapper's children die too)
   * and waits until it is reaped. During a graceful shutdown it cuts that short.
   */
  readonly kill: Effect.Effect<void>
  /**
   * Waits for QEMU to exit on its own, e.g. after the guest powers off (Python's `wait`).
   * No `quit` is sent. If the timeout elapses, QEMU is killed: `AbnormalShutdown`. Says how
   * QEMU ended (exit status and `SHUTDOWN` reason): a non-zero exit is no clean power-off.
   */
  readonly wait: (
    options?: { readonly timeout?: Duration.DurationInput }
  ) => Effect.Effect<MachineExit, AbnormalShutdown | MachineConfigError>
  readonly isRunning: Effect.Effect<boolean>
  /** How QEMU exited, once it has. */
  readonly exitStatus: Effect.Effect<Option.Option<ExitStatus>>
  /** What QEMU wrote to stdout and stderr; still available after shutdown (Python's `QEMUMachine.get_log`). */
  readonly log: Effect.Effect<string>
}

/**
 * How a machine ended, as `shutdown` and `wait` report it: QEMU's exit status and the `SHUTDOWN`
 * event it sent before exiting, if any. A guest that powered off has `clean: true` and a
 * `shutdown` with `guest: true`; a migration destination whose incoming stream failed exits with
 * code 1 and no `SHUTDOWN` event, so `clean` is false.
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineExit {
  /** QEMU's exit code and signal; both `null` only if QEMU survived SIGKILL. */
  readonly status: ExitStatus
  /** The `SHUTDOWN` event's data: `guest` (the guest asked) and `reason` (e.g. `"guest-shutdown"`, `"host-qmp-quit"`, `"host-signal"`). */
  readonly shutdown: Option.Option<QmpEvent<"SHUTDOWN">["data"]>
  /** QEMU exited with code 0. */
  readonly clean: boolean
}

/**
 * The Machine service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Machine extends Context.Tag("effect-qemu/Machine")<Machine, MachineService>() {}

/** How much of QEMU's log is kept in memory after the temp directory is gone. */
const logKeepBytes = 1024 * 1024

const describeExit = (status: ExitStatus) =>
  status.signal !== null ? `killed by ${status.signal}` : `exited with code ${status.code}`

const launch = (config: ResolvedConfig) =>
  Effect.gen(function*() {
    // A program that cannot run is reported before anything is created on disk.
    yield* QemuProcess.resolveExecutable(config.binary, config.name, "binary")
    if (config.wrapper.length > 0) yield* QemuProcess.resolveExecutable(config.wrapper[0], config.name, "wrapper")
    const tempDir = yield* machineDir(config)
    const useSocketpair = config.qmp && config.monitor._tag === "Socketpair"
    // The default UNIX socket lives in the machine's directory: the one launch that needs it at once.
    if (
      config.qmp && config.monitor._tag === "Unix" && config.monitor.path === undefined && config.sockDir === undefined
    ) {
      yield* tempDir.ensureEffect
    }
    const listener = config.qmp && !useSocketpair ? yield* listenForMonitor(config, tempDir.path) : undefined

    // Child descriptors from 3 up: the monitor's socketpair, the console's, then -add-fd ones.
    const childFds = new ChildFds()
    const monitorFd = useSocketpair ? childFds.pipe() : undefined
    const consoleFd = config.console !== undefined ? childFds.pipe() : undefined
    const agentFd = config.guestAgent ? childFds.pipe() : undefined
    // Checked by the config already: a Left here would be a bug, not the caller's input.
    const fds = Either.getOrThrow(fdArgs({ fds: config.fds, firstChildFd: childFds.next }))
    childFds.add(fds.stdio)

    const monitorChardev = monitorFd !== undefined ? `socket,id=mon,fd=${monitorFd}` : listener?.chardev
    // With a wrapper of the caller's, QEMU gets the parent-death signal too: when the wrapper dies
    // with the controller (first prefix), QEMU dies with the wrapper (second).
    const deathPrefix = config.parentDeathSignal ? (yield* parentDeathWrapper).prefix : []
    const wrapper = config.wrapper.length === 0
      ? deathPrefix
      : [...deathPrefix, ...config.wrapper, ...deathPrefix]
    const { path: logPath } = yield* logFile(config)
    // Through the spawner once it runs (the event loop never waits for a fork); directly until then.
    const via = spawner(deathPrefix, childFds.stdio) ?? spawnDirect
    const process = yield* QemuProcess.makeVia({
      name: config.name,
      binary: config.binary,
      wrapper,
      args: [
        ...baseArgs(config, monitorChardev, consoleFd),
        ...(agentFd !== undefined ? guestAgentArgs(agentFd) : []),
        ...fds.args,
        ...config.args
      ],
      logPath,
      extraStdio: childFds.stdio
    }, via)

    const exitedEarly = Effect.flatMap(process.awaitExit, (status) =>
      Effect.flatMap(process.readLog, (log) =>
        Effect.fail(
          new LaunchError({
            ...(config.ports !== undefined && refusedNetwork(log)
              ? {
                reason: "Network",
                detail: `QEMU ${describeExit(status)}: it refused the NIC or the user network of the forwarded ports ` +
                  "(the machine needs a bus for the NIC model, and QEMU needs user networking)"
              }
              : { reason: "ExitedEarly", detail: `QEMU ${describeExit(status)} before its monitor was ready` }),
            name: config.name,
            commandLine: process.commandLine,
            exitCode: status.code,
            signal: status.signal,
            logTail: QemuProcess.tail(log)
          })
        )))

    const connect = Effect.gen(function*() {
      let qmp: QmpClient
      if (!config.qmp) {
        qmp = disabledQmp(config.name)
      } else {
        const duplex = monitorFd !== undefined ? process.stdio[monitorFd]! : yield* listener!.accept
        qmp = yield* Qmp.make({ _tag: "Duplex", duplex, label: `${config.name} monitor` }, {
          ...config.qmpOptions,
          name: config.name
        }).pipe(
          Effect.catchAll((cause) =>
            // The monitor dies with QEMU: tell the exit (with QEMU's own words) rather than the socket.
            Effect.flatMap(process.waitExit("1 second"), (status) =>
              Option.isSome(status) ? exitedEarly : Effect.fail(
                new LaunchError({
                  reason: "MonitorFailed",
                  name: config.name,
                  detail: cause.message,
                  commandLine: process.commandLine,
                  cause
                })
              ))
          )
        )
      }
      const console = config.console === undefined
        ? Console.unavailable(`machine "${config.name}" has no console`)
        : yield* Console.make({
          socket: process.stdio[consoleFd!]!,
          name: config.name,
          drain: config.console.drain || config.console.logFile !== undefined,
          ...(config.console.logFile !== undefined ? { logFile: config.console.logFile } : {}),
          ...(config.console.bufferBytes !== undefined ? { bufferBytes: config.console.bufferBytes } : {})
        }).pipe(
          Effect.mapError((cause) =>
            new LaunchError({
              reason: "ConsoleFailed",
              name: config.name,
              detail: `console: ${cause.message}`,
              commandLine: process.commandLine,
              cause
            })
          )
        )
      const ports = yield* readPorts(qmp, config.ports ?? []).pipe(
        Effect.mapError((detail) =>
          new LaunchError({ reason: "Network", name: config.name, detail, commandLine: process.commandLine })
        )
      )
      return { qmp, console, ports }
    })

    const launchTimeout = Duration.decode(config.launchTimeout)
    // Over a socketpair, QEMU's exit closes the monitor and the connection attempt reports it;
    // a listener would wait on, so there the exit is watched for too.
    const ready = listener === undefined ? connect : Effect.raceFirst(connect, exitedEarly)
    const { console, ports, qmp } = yield* ready
      .pipe(
        Effect.timeoutFail({
          duration: launchTimeout,
          onTimeout: () =>
            new LaunchError({
              reason: "Timeout",
              name: config.name,
              detail: `QMP was not ready within ${Duration.format(launchTimeout)} (launchTimeout)`,
              commandLine: process.commandLine
            })
        })
      )
    // Its options are the defaults, which cannot fail.
    const guestAgent = agentFd === undefined
      ? GuestAgent.unavailable(config.name, `machine "${config.name}" was launched without guestAgent: true`)
      : yield* Effect.orDie(GuestAgent.make({ socket: process.stdio[agentFd]!, name: config.name }))
    return { tempDir, process, qmp, console, guestAgent, ports }
  })

/**
 * Launches a machine in the current scope. When the scope closes, the machine is shut down
 * gracefully (bounded by `shutdownTimeout`, then killed) and its temp directory removed; that
 * release never fails and never hangs. A launch that fails leaves nothing behind.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine } from "effect-qemu"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
 *   const status = yield* vm.execute("query-status")
 *   yield* Effect.log(status)
 * }))
 * ```
 */
export const make = (
  input: MachineConfigInput = {}
): Effect.Effect<MachineService, MachineConfigError | LaunchError | Wait.WaitError, Scope.Scope> =>
  launchTurn.pipe(
    Effect.zipRight(MachineConfig.resolve(input)),
    Effect.flatMap((config) => start(config, { ...input, name: config.name }))
  )

/** Launches a checked configuration, its logs annotated with the machine's name. */
const start = (config: ResolvedConfig, input: MachineConfigInput) =>
  makeResolved(config, input).pipe(Effect.annotateLogs({ machine: config.name }))

/**
 * Shuts a machine down and launches it again in the current scope from its configuration grown
 * by `extension` (`MachineConfig.extend`: `args` appended, and so on), as test suites relaunch a
 * machine with a grown command line. The new machine keeps the name. A shutdown that is not
 * clean (`AbnormalShutdown`) stops here and launches nothing, and an extension that makes the
 * configuration invalid is a `MachineConfigError` before the machine is stopped; the old machine's temp directory is
 * removed when its own scope closes.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine } from "effect-qemu"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
 *   const again = yield* Machine.relaunch(vm, { args: ["-blockdev", "driver=null-co,node-name=drive0"] })
 *   yield* again.execute("query-named-block-nodes")
 * }))
 * ```
 */
export const relaunch = (
  machine: MachineService,
  extension: MachineConfig.MachineConfigExtension = {}
): Effect.Effect<MachineService, AbnormalShutdown | MachineConfigError | LaunchError | Wait.WaitError, Scope.Scope> =>
  Effect.gen(function*() {
    const input = MachineConfig.extend(machine.config, extension)
    // A bad extension is refused while the machine still runs.
    const config = yield* MachineConfig.resolve(input)
    yield* machine.shutdown()
    // In its turn, as every launch (a fleet's launches take turns).
    yield* launchTurn
    return yield* start(config, input)
  })

const makeResolved = (
  config: ResolvedConfig,
  input: MachineConfigInput
): Effect.Effect<MachineService, LaunchError | Wait.WaitError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = config.name
    const outer = yield* Effect.scope
    // Launch in a scope of its own so that a failed launch releases everything at once, not
    // when the caller's scope ends.
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    const launchStarted = performance.now()
    const launched = yield* launch(config).pipe(
      Scope.extend(scope),
      Effect.onExit((exit) => {
        if (Exit.isSuccess(exit)) return Effect.void
        Metering.launchEnded(undefined)
        return Scope.close(scope, exit)
      }),
      withHotSpan("Machine.launch", { "machine.name": name })
    )
    Metering.launchEnded((performance.now() - launchStarted) / 1000)
    const { console, guestAgent, ports, process, qmp, tempDir } = launched
    // Running until QEMU exits or the scope is released, whichever comes first.
    const notRunning = Metering.machineRunning()
    yield* Scope.addFinalizer(scope, Effect.sync(notRunning))
    // Formatted only when debug logs are on: this runs for every machine of a fleet.
    yield* Effect.suspend(() => Effect.logDebug(`launched: ${formatCommandLine(process.commandLine)}`)).pipe(
      Effect.whenLogLevel("Debug")
    )

    let keptLog: string | undefined
    const readLog = Effect.map(process.readLog, (log) => log.length > logKeepBytes ? log.slice(-logKeepBytes) : log)

    // The log file goes with the temp directory: keep its tail in memory just before that, on
    // release (not in shutdown, which would pay a file read for a log nobody may ask for).
    yield* Scope.addFinalizer(
      scope,
      Effect.map(readLog, (log) => {
        keptLog = log
      })
    )

    const stopper = new Stopper({ name, process, qmp, console, hasQmp: config.qmp })
    const stop = (level: StopLevel, timeout: Duration.Duration) =>
      stopper.stop(level, timeout).pipe(
        // Once the stop ended, however, QEMU is gone (an abnormal one killed it); a caller that
        // stopped waiting knows nothing yet.
        Effect.onExit((exit) => Exit.isInterrupted(exit) ? Effect.void : Effect.sync(notRunning)),
        withHotSpan(level === "Hard" ? "Machine.kill" : "Machine.shutdown", { "machine.name": name })
      )

    const shutdownTimeout = config.shutdownTimeout
    /** A caller's timeout option: a positive duration, or the machine's `shutdownTimeout`. */
    const timeoutOption = (input: Duration.DurationInput | undefined) =>
      Either.match(Timer.decodeTimeoutOr(input, shutdownTimeout), {
        onLeft: (detail) => Effect.fail(new MachineConfigError({ field: "timeout", detail })),
        onRight: Effect.succeed
      })
    const shutdown = (options?: ShutdownOptions) =>
      Effect.flatMap(
        timeoutOption(options?.timeout),
        (timeout) => stop(options?.hard === true ? "Hard" : "Graceful", timeout)
      )

    // Release: graceful with fallback, bounded, never failing the scope.
    yield* Scope.addFinalizer(
      scope,
      shutdown().pipe(
        Effect.catchAll((error) => Effect.logWarning(`abnormal shutdown on release: ${error.message}`)),
        Effect.annotateLogs({ machine: name })
      )
    )

    // A QEMU that dies while nobody is stopping it is worth a warning with its command line.
    // A callback on the exit, not a fiber awaiting it for the machine's whole life.
    const runtime = yield* Effect.runtime<never>()
    const stopWatching = QemuProcess.onExit(process, (status) => {
      notRunning()
      if (stopper.started) return
      const text = `QEMU exited on its own (${describeExit(status)}); command: ${
        formatCommandLine(process.commandLine)
      }`
      // Exit code 0 is a guest that powered off; anything else deserves attention.
      const line = status.code === 0 ? Effect.logInfo(text) : Effect.logWarning(text)
      Runtime.runFork(runtime)(line.pipe(Effect.annotateLogs({ machine: name })))
    })
    yield* Scope.addFinalizer(scope, Effect.sync(stopWatching))

    const service: MachineService = {
      name,
      pid: process.pid,
      commandLine: process.commandLine,
      config: input,
      get tempDir() {
        return tempDir.ensure()
      },
      process,
      qmp,
      console,
      guestAgent,
      ports,
      execute: qmp.execute,
      raw: qmp.raw,
      waitEvent: qmp.waitEvent,
      waitEvents: qmp.waitEvents,
      executeAndWait: qmp.executeAndWait,
      events: qmp.events,
      takeEvents: qmp.takeEvents,
      nextEvent: qmp.nextEvent,
      nextEvents: qmp.nextEvents,
      hmp: qmp.hmp,
      sendFd: (fd, fdname) => Effect.asVoid(qmp.executeWithFd(fd, "getfd", { fdname })),
      shutdown,
      kill: Effect.asVoid(
        Effect.catchAll(stop("Hard", shutdownTimeout), () => Effect.void)
      ),
      wait: (options) => Effect.flatMap(timeoutOption(options?.timeout), (timeout) => stop("Wait", timeout)),
      isRunning: process.isRunning,
      exitStatus: process.exitStatus,
      log: Effect.suspend(() => keptLog !== undefined ? Effect.succeed(keptLog) : readLog)
    }
    if (config.waitFor !== undefined) {
      // not ready: stopped now, as a failed launch is, rather than when the caller's scope ends
      yield* Wait.until(service, config.waitFor).pipe(
        Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
      )
    }
    return service
  })

/**
 * A layer that launches a machine for its lifetime and provides {@link Machine} together with
 * the {@link Qmp.Qmp}, {@link Console.Console}, {@link QemuProcess.QemuProcess} and
 * {@link GuestAgent.GuestAgent} services it is made of.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: MachineConfigInput = {}
): Layer.Layer<
  Machine | Qmp.Qmp | Console.Console | QemuProcess.QemuProcess | GuestAgent.GuestAgent,
  MachineConfigError | LaunchError | Wait.WaitError
> =>
  Layer.scopedContext(
    Effect.map(make(config), (machine) =>
      Context.make(Machine, machine).pipe(
        Context.add(Qmp.Qmp, machine.qmp),
        Context.add(Console.Console, machine.console),
        Context.add(QemuProcess.QemuProcess, machine.process),
        Context.add(GuestAgent.GuestAgent, machine.guestAgent)
      ))
  )

/**
 * Like {@link layer}, with the configuration read from Effect's `Config` (environment variables
 * by default): one `Config` of the whole input, or an object whose fields are `Config`s
 * (`Config.Wrap`, as Effect's own `layerConfig`s take). A missing or malformed config value fails
 * the layer with `ConfigError` from `effect`; a read but invalid one with `MachineConfigError`.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { Machine } from "effect-qemu"
 *
 * const VmLive = Machine.layerConfig({
 *   binary: Config.string("QEMU_BINARY").pipe(Config.withDefault("qemu-system-x86_64")),
 *   machineType: Config.string("QEMU_MACHINE").pipe(Config.withDefault("q35"))
 * })
 * ```
 */
export const layerConfig = (
  config: Config.Config.Wrap<MachineConfigInput>
): Layer.Layer<
  Machine | Qmp.Qmp | Console.Console | QemuProcess.QemuProcess | GuestAgent.GuestAgent,
  MachineConfigError | LaunchError | Wait.WaitError | EffectConfigError.ConfigError
> => Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
