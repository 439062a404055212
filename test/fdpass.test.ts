import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fdArgs, FdPassError } from "../src/internal/fdArgs.js"
import { ScmRightsError, sendFd } from "../src/internal/ScmRights.js"
import { eventually, rawQmp, tempDir } from "./kit/qemu.js"

const launchVm = (options: { readonly args?: ReadonlyArray<string>; readonly fds?: ReadonlyArray<number> } = {}) =>
  Effect.gen(function*() {
    const { qemu, qmp } = yield* rawQmp(options.args, { fds: options.fds ?? [] })
    assert.isDefined(qmp.greeting.QMP)
    assert.isTrue(yield* qmp.isOpen)
    return {
      pid: qemu.pid,
      monitor: qemu.monitor,
      // QEMU's reply as it sent it, error replies included.
      execute: (command: string, args?: Record<string, unknown>) =>
        qmp.raw(command, args, { timeout: "10 seconds" }).pipe(Effect.map((reply) => reply as QmpReply))
    }
  })

const openFile = (file: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.openSync(file, "w+")),
    (fd) => Effect.sync(() => Fs.closeSync(fd))
  )

interface QmpReply {
  readonly return?: any
  readonly error?: { readonly class: string; readonly desc: string }
}

// What QEMU's descriptor `fd` points at, read from QEMU's own fd table.
const qemuFdTarget = (vm: { readonly pid: number }, fd: number): string => Fs.readlinkSync(`/proc/${vm.pid}/fd/${fd}`)

describe("fdArgs", () => {
  it("maps descriptors onto consecutive child slots and names the child numbers in -add-fd", () => {
    const result = fdArgs({
      fds: [{ fd: 21, set: 1, opaque: "disk" }, { fd: 9, set: 2 }, { fd: 30, set: 2, opts: "future=on" }],
      firstChildFd: 4
    })
    assert.deepStrictEqual(
      result,
      Either.right({
        stdio: [21, 9, 30],
        args: ["-add-fd", "fd=4,set=1,opaque=disk", "-add-fd", "fd=5,set=2", "-add-fd", "fd=6,set=2,future=on"],
        childFds: [4, 5, 6]
      })
    )
  })

  it("rejects what QEMU would refuse or misread, naming the entry and field to fix", () => {
    const fieldOf = (result: ReturnType<typeof fdArgs>) =>
      Either.match(result, {
        onLeft: (error) => {
          assert.instanceOf(error, FdPassError)
          return `${error.index}:${error.field}`
        },
        onRight: () => "accepted"
      })
    assert.strictEqual(fieldOf(fdArgs({ fds: [{ fd: -1, set: 1 }], firstChildFd: 3 })), "0:fd")
    assert.strictEqual(fieldOf(fdArgs({ fds: [{ fd: 1.5, set: 1 }], firstChildFd: 3 })), "0:fd")
    assert.strictEqual(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1 }, { fd: 7, set: 2 }], firstChildFd: 3 })), "1:fd")
    assert.strictEqual(fieldOf(fdArgs({ fds: [{ fd: 7, set: -2 }], firstChildFd: 3 })), "0:set")
    assert.strictEqual(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1, opaque: "a,b" }], firstChildFd: 3 })), "0:opaque")
    assert.strictEqual(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1, opts: "fd=9" }], firstChildFd: 3 })), "0:opts")
    assert.strictEqual(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1 }], firstChildFd: 2 })), "-1:firstChildFd")
    const error = Either.getLeft(fdArgs({ fds: [{ fd: 7, set: 1, opaque: "a,b" }], firstChildFd: 3 }))
    assert.include(Option.getOrThrow(error).message, "comma")
  })
})

describe("launch-time fds (-add-fd)", () => {
  it.scopedLive("query-fdsets shows fd set 1 holding the passed file with its opaque", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-fdpass-")
      const file = Path.join(dir, "launch.img")
      const fd = yield* openFile(file)
      const mapped = yield* Either.match(fdArgs({ fds: [{ fd, set: 1, opaque: "launch-file" }], firstChildFd: 4 }), {
        onLeft: Effect.fail,
        onRight: Effect.succeed
      })
      const vm = yield* launchVm({ args: mapped.args, fds: mapped.stdio })
      const reply = yield* vm.execute("query-fdsets")
      assert.lengthOf(reply.return, 1)
      const [fdset] = reply.return
      assert.strictEqual(fdset["fdset-id"], 1)
      assert.lengthOf(fdset.fds, 1)
      assert.strictEqual(fdset.fds[0].opaque, "launch-file")
      assert.strictEqual(qemuFdTarget(vm, fdset.fds[0].fd), file)
    }))
})

describe("runtime fds over QMP (sendFd)", () => {
  it.scopedLive("getfd names a sent fd, closefd releases it, closefd of a name never sent is a GenericError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-fdpass-")
      const fd = yield* openFile(Path.join(dir, "runtime.img"))
      const vm = yield* launchVm()
      yield* sendFd({ socket: vm.monitor, fd })
      assert.deepStrictEqual(yield* vm.execute("getfd", { fdname: "myfd" }), { return: {} })
      assert.deepStrictEqual(yield* vm.execute("closefd", { fdname: "myfd" }), { return: {} })
      const never = yield* vm.execute("closefd", { fdname: "never-sent" })
      assert.strictEqual(never.error?.class, "GenericError")
    }))

  it.scopedLive("getfd without sendFd fails: the descriptor really travels as SCM_RIGHTS", () =>
    Effect.gen(function*() {
      const vm = yield* launchVm()
      const reply = yield* vm.execute("getfd", { fdname: "myfd" })
      assert.strictEqual(reply.error?.class, "GenericError")
      assert.include(reply.error?.desc, "SCM_RIGHTS")
    }))

  it.scopedLive("add-fd puts a sent fd into an fd set that query-fdsets shows", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-fdpass-")
      const file = Path.join(dir, "added.img")
      const fd = yield* openFile(file)
      const vm = yield* launchVm()
      yield* sendFd({ socket: vm.monitor, fd })
      const added = yield* vm.execute("add-fd", { "fdset-id": 2, opaque: "runtime-file" })
      assert.strictEqual(added.return["fdset-id"], 2)
      const sets = yield* vm.execute("query-fdsets")
      assert.deepStrictEqual(sets.return, [{ "fdset-id": 2, fds: [{ fd: added.return.fd, opaque: "runtime-file" }] }])
      assert.strictEqual(qemuFdTarget(vm, added.return.fd), file)
    }))

  it.scopedLive("a missing python3 is a HelperMissing error that says what to install", () =>
    Effect.gen(function*() {
      const vm = yield* launchVm()
      const error = yield* Effect.flip(sendFd({ socket: vm.monitor, fd: 0, python: "/nonexistent/python3" }))
      assert.instanceOf(error, ScmRightsError)
      assert.strictEqual(error.reason, "HelperMissing")
      assert.include(error.message, "install python3")
      assert.property(yield* vm.execute("query-version"), "return")
    }))

  it.scopedLive("a helper that hangs is killed at the timeout and the monitor keeps working", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-fdpass-")
      const pidFile = Path.join(dir, "helper.pid")
      const fakePython = Path.join(dir, "python3")
      Fs.writeFileSync(fakePython, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 30\n`, { mode: 0o755 })
      const vm = yield* launchVm()
      const started = Date.now()
      const error = yield* Effect.flip(
        sendFd({ socket: vm.monitor, fd: 0, python: fakePython, timeout: "300 millis" })
      )
      assert.strictEqual(error.reason, "Timeout")
      assert.isBelow(Date.now() - started, 3000)
      const helperPid = Number(Fs.readFileSync(pidFile, "utf8").trim())
      yield* eventually("the timed-out helper is gone", () => !Fs.existsSync(`/proc/${helperPid}`))
      assert.property(yield* vm.execute("query-version"), "return")
    }))
})
