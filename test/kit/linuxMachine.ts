/**
 * Machines on the Linux guest of `linuxGuest.ts` for the tests that go inside it: booted with a
 * console, and logged in on it with a shell ready. With `ports`, the guest gets the library's NIC
 * on user networking (and no other), which its init brings up at 10.0.2.15.
 */
import * as Effect from "effect/Effect"
import * as Machine from "../../src/Machine.js"
import * as Shell from "../../src/Shell.js"
import { linuxGuest, linuxGuestArgs } from "./linuxGuest.js"

/** A machine's config without the guest's arguments, which these helpers give. */
export type GuestConfig = Omit<Machine.MachineConfigInput, "args">

/** Boots the Linux guest with a console; `config` may add ports, a guest agent, waitFor... */
export const bootLinux = (config: GuestConfig = {}) =>
  Effect.flatMap(linuxGuest, (guest) =>
    Machine.make({
      console: {},
      ...config,
      args: linuxGuestArgs(guest, config.ports === undefined ? {} : { net: [] })
    }))

/** Boots the Linux guest, logs in as root on its console and returns the machine and a shell. */
export const loggedIn = (config: GuestConfig = {}) =>
  Effect.gen(function*() {
    const vm = yield* bootLinux(config)
    yield* Shell.login(vm.console, { user: "root", password: "secret", timeout: "60 seconds" })
    const shell = Shell.fromConsole(vm.console)
    yield* shell.sync({ timeout: "20 seconds" })
    return { vm, shell }
  })
