/**
 * Tiny real-mode x86 guests: 512-byte boot sectors, assembled by hand below. They make console
 * tests real and fast: a guest that prints a banner and echoes, one that floods the serial port,
 * one that powers the machine off.
 *
 * Every guest shares one layout, so that jump offsets are fixed and only the message varies:
 *
 * ```
 * 0x00  prologue      segments to 0, stack below the sector, COM1 set to 115200 8N1 with FIFO
 * 0x3a  jmp main
 * 0x3c  puts          prints the NUL-terminated string at DS:SI
 * 0x47  putc          prints AL once the transmit holding register is empty
 * 0x58  main          differs per guest
 * ....  message       the text, "\r\n", NUL
 * 0x1fe 0x55 0xaa     boot signature
 * ```
 *
 * Boot any of them as a floppy: `-M pc -nodefaults -display none -drive file=IMG,format=raw,if=floppy`
 * plus a serial port for the console, e.g. `-chardev socket,id=console,fd=3 -serial chardev:console`.
 * `-M pc` keeps its built-in floppy controller under `-nodefaults`.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"

const SECTOR_BYTES = 512
const LOAD_ADDRESS = 0x7c00

// dprint-ignore
const prologue: ReadonlyArray<number> = [
  0xfa,                         // 0x00 cli
  0xea, 0x06, 0x7c, 0x00, 0x00, // 0x01 jmp 0x0000:0x7c06    (BIOSes differ on CS:IP; make it 0:7c06)
  0x31, 0xc0,                   // 0x06 xor ax, ax
  0x8e, 0xd8,                   // 0x08 mov ds, ax
  0x8e, 0xd0,                   // 0x0a mov ss, ax
  0xbc, 0x00, 0x7c,             // 0x0c mov sp, 0x7c00
  0xfc,                         // 0x0f cld
  0xba, 0xf9, 0x03,             // 0x10 mov dx, 0x3f9        (IER)
  0x30, 0xc0,                   // 0x13 xor al, al
  0xee,                         // 0x15 out dx, al           (no UART interrupts: we poll)
  0xba, 0xfb, 0x03,             // 0x16 mov dx, 0x3fb        (LCR)
  0xb0, 0x80,                   // 0x19 mov al, 0x80
  0xee,                         // 0x1b out dx, al           (DLAB on)
  0xba, 0xf8, 0x03,             // 0x1c mov dx, 0x3f8        (DLL)
  0xb0, 0x01,                   // 0x1f mov al, 1
  0xee,                         // 0x21 out dx, al           (divisor 1: 115200 baud)
  0xba, 0xf9, 0x03,             // 0x22 mov dx, 0x3f9        (DLM)
  0x30, 0xc0,                   // 0x25 xor al, al
  0xee,                         // 0x27 out dx, al
  0xba, 0xfb, 0x03,             // 0x28 mov dx, 0x3fb        (LCR)
  0xb0, 0x03,                   // 0x2b mov al, 3
  0xee,                         // 0x2d out dx, al           (8N1, DLAB off)
  0xba, 0xfa, 0x03,             // 0x2e mov dx, 0x3fa        (FCR)
  0xb0, 0xc7,                   // 0x31 mov al, 0xc7
  0xee,                         // 0x33 out dx, al           (FIFOs on and cleared)
  0xba, 0xfc, 0x03,             // 0x34 mov dx, 0x3fc        (MCR)
  0xb0, 0x03,                   // 0x37 mov al, 3
  0xee,                         // 0x39 out dx, al           (DTR, RTS)
  0xeb, 0x1c,                   // 0x3a jmp 0x58             (main)
  // puts: print the NUL-terminated string at DS:SI; clobbers AX, DX, SI.
  0xac,                         // 0x3c lodsb
  0x84, 0xc0,                   // 0x3d test al, al
  0x74, 0x05,                   // 0x3f jz 0x46
  0xe8, 0x03, 0x00,             // 0x41 call 0x47            (putc)
  0xeb, 0xf6,                   // 0x44 jmp 0x3c
  0xc3,                         // 0x46 ret
  // putc: print AL on COM1; clobbers AX, DX.
  0x88, 0xc4,                   // 0x47 mov ah, al
  0xba, 0xfd, 0x03,             // 0x49 mov dx, 0x3fd        (LSR)
  0xec,                         // 0x4c in al, dx
  0xa8, 0x20,                   // 0x4d test al, 0x20        (THR empty?)
  0x74, 0xfb,                   // 0x4f jz 0x4c
  0xba, 0xf8, 0x03,             // 0x51 mov dx, 0x3f8        (THR)
  0x88, 0xe0,                   // 0x54 mov al, ah
  0xee,                         // 0x56 out dx, al
  0xc3                          // 0x57 ret
]

const MAIN = 0x58

const lo = (address: number) => address & 0xff
const hi = (address: number) => (address >> 8) & 0xff

/** Puts prologue, main and message into one signed sector; `main` receives the message's load address. */
const sector = (main: (message: number) => ReadonlyArray<number>, text: string): Uint8Array => {
  const message = new TextEncoder().encode(`${text}\r\n\0`)
  // main's length does not depend on the address it is given
  const mainBytes = main(0).length
  const messageOffset = MAIN + mainBytes
  if (messageOffset + message.length > SECTOR_BYTES - 2) {
    throw new RangeError(`guest text too long: ${message.length} bytes, at most ${SECTOR_BYTES - 2 - messageOffset}`)
  }
  const image = new Uint8Array(SECTOR_BYTES)
  image.set(prologue, 0)
  image.set(main(LOAD_ADDRESS + messageOffset), MAIN)
  image.set(message, messageOffset)
  image[SECTOR_BYTES - 2] = 0x55
  image[SECTOR_BYTES - 1] = 0xaa
  return image
}

/**
 * Prints `banner` and "\r\n" on COM1, then echoes back every byte it receives, forever.
 *
 * @since 0.1.0
 * @category constructors
 */
export const bannerEchoGuest = (banner: string): Uint8Array =>
  // dprint-ignore
  sector((message) => [
    0xbe, lo(message), hi(message), // 0x58 mov si, message
    0xe8, 0xde, 0xff,               // 0x5b call 0x3c           (puts)
    0xba, 0xfd, 0x03,               // 0x5e mov dx, 0x3fd       (LSR)
    0xec,                           // 0x61 in al, dx
    0xa8, 0x01,                     // 0x62 test al, 1          (data ready?)
    0x74, 0xf8,                     // 0x64 jz 0x5e
    0xba, 0xf8, 0x03,               // 0x66 mov dx, 0x3f8       (RBR)
    0xec,                           // 0x69 in al, dx
    0xe8, 0xda, 0xff,               // 0x6a call 0x47           (putc)
    0xeb, 0xef                      // 0x6d jmp 0x5e
  ], banner)

/**
 * Prints `line` and "\r\n" on COM1 forever, as fast as the serial port takes it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const floodGuest = (line: string): Uint8Array =>
  // dprint-ignore
  sector((message) => [
    0xbe, lo(message), hi(message), // 0x58 mov si, message
    0xe8, 0xde, 0xff,               // 0x5b call 0x3c           (puts)
    0xeb, 0xf8                      // 0x5e jmp 0x58
  ], line)

/**
 * Waits until the UART has sent its last byte, then powers off through ACPI: PIIX4's PM I/O
 * base from PCI config space, SLP_EN with SLP_TYP 0 (soft off) to PM1a_CNT, then halts. 39
 * bytes, position-independent (its jumps are relative).
 */
// dprint-ignore
const waitSentThenPoweroff: ReadonlyArray<number> = [
    0xba, 0xfd, 0x03,               // mov dx, 0x3fd       (LSR)
    0xec,                           // in al, dx
    0xa8, 0x40,                     // test al, 0x40       (transmitter empty?)
    0x74, 0xfb,                     // jz back to in
    0x66, 0xb8, 0x40, 0x0b, 0x00, 0x80, // mov eax, 0x80000b40 (PCI 00:01.3, reg 0x40: PMBA)
    0xba, 0xf8, 0x0c,               // mov dx, 0xcf8       (CONFIG_ADDRESS)
    0x66, 0xef,                     // out dx, eax
    0xba, 0xfc, 0x0c,               // mov dx, 0xcfc       (CONFIG_DATA)
    0x66, 0xed,                     // in eax, dx
    0x25, 0xc0, 0xff,               // and ax, 0xffc0      (I/O base, without the space bit)
    0x83, 0xc0, 0x04,               // add ax, 4           (PM1a_CNT)
    0x89, 0xc2,                     // mov dx, ax
    0xb8, 0x00, 0x20,               // mov ax, 0x2000      (SLP_EN, SLP_TYP 0: soft off)
    0xef,                           // out dx, ax
    0xf4,                           // hlt
    0xeb, 0xfd                      // jmp back to hlt
]

/**
 * Prints `banner` and "\r\n" on COM1, waits until the UART has sent it, then ends the VM.
 *
 * - With `exitCode` (0 to 127), it first writes the code to port 0xf4. Given
 *   `-device isa-debug-exit,iobase=0xf4,iosize=0x04`, QEMU exits at once with status `(exitCode << 1) | 1`
 *   and emits no SHUTDOWN event. Without the device the write goes nowhere and the guest goes on below.
 * - Then it powers off through ACPI: it reads the PIIX4 power-management base from PCI config space
 *   (device 00:01.3, register 0x40) and writes SLP_EN with sleep type 0 (soft off) to PM1a_CNT.
 *   That needs `-M pc` (i440FX, ACPI on, the default). QEMU reports it as a guest shutdown
 *   (`SHUTDOWN` with `guest: true`, `reason: "guest-shutdown"`) and exits with status 0,
 *   or stops and stays up under `-no-shutdown`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const poweroffGuest = (banner: string, exitCode?: number): Uint8Array => {
  if (exitCode !== undefined && !(Number.isInteger(exitCode) && exitCode >= 0 && exitCode <= 127)) {
    throw new RangeError(`exitCode must be an integer from 0 to 127, got ${exitCode}`)
  }
  // dprint-ignore
  const debugExit = exitCode === undefined
    ? [0x90, 0x90, 0x90, 0x90]      // 0x66 nop x4              (keep the offsets below fixed)
    : [
      0xb0, exitCode,               // 0x66 mov al, exitCode
      0xe6, 0xf4                    // 0x68 out 0xf4, al        (isa-debug-exit)
    ]
  // dprint-ignore
  return sector((message) => [
    0xbe, lo(message), hi(message), // 0x58 mov si, message
    0xe8, 0xde, 0xff,               // 0x5b call 0x3c           (puts)
    0xba, 0xfd, 0x03,               // 0x5e mov dx, 0x3fd       (LSR)
    0xec,                           // 0x61 in al, dx
    0xa8, 0x40,                     // 0x62 test al, 0x40       (transmitter empty?)
    0x74, 0xfb,                     // 0x64 jz 0x61
    ...debugExit,                   // 0x66
    0x66, 0xb8, 0x40, 0x0b, 0x00, 0x80, // 0x6a mov eax, 0x80000b40 (PCI 00:01.3, reg 0x40: PMBA)
    0xba, 0xf8, 0x0c,               // 0x70 mov dx, 0xcf8       (CONFIG_ADDRESS)
    0x66, 0xef,                     // 0x73 out dx, eax
    0xba, 0xfc, 0x0c,               // 0x75 mov dx, 0xcfc       (CONFIG_DATA)
    0x66, 0xed,                     // 0x78 in eax, dx
    0x25, 0xc0, 0xff,               // 0x7a and ax, 0xffc0      (I/O base, without the space bit)
    0x83, 0xc0, 0x04,               // 0x7d add ax, 4           (PM1a_CNT)
    0x89, 0xc2,                     // 0x80 mov dx, ax
    0xb8, 0x00, 0x20,               // 0x82 mov ax, 0x2000      (SLP_EN, SLP_TYP 0: soft off)
    0xef,                           // 0x85 out dx, ax
    0xf4,                           // 0x86 hlt
    0xeb, 0xfd                      // 0x87 jmp 0x86
  ], banner)
}

/**
 * Prints `banner` and "\r\n" on COM1, echoes every byte it receives until a carriage return ("\r"),
 * then prints `banner` and "\r\n" again (its last words), waits until the UART has sent them and
 * powers off through ACPI as {@link poweroffGuest} does. Input that is lost never brings it down.
 *
 * @since 0.1.0
 * @category constructors
 */
export const echoUntilEnterGuest = (banner: string): Uint8Array =>
  // dprint-ignore
  sector((message) => [
    0xbe, lo(message), hi(message), // 0x58 mov si, message
    0xe8, 0xde, 0xff,               // 0x5b call 0x3c           (puts)
    0xba, 0xfd, 0x03,               // 0x5e mov dx, 0x3fd       (LSR)
    0xec,                           // 0x61 in al, dx
    0xa8, 0x01,                     // 0x62 test al, 1          (data ready?)
    0x74, 0xf8,                     // 0x64 jz 0x5e
    0xba, 0xf8, 0x03,               // 0x66 mov dx, 0x3f8       (RBR)
    0xec,                           // 0x69 in al, dx
    0x3c, 0x0d,                     // 0x6a cmp al, 0x0d        (carriage return?)
    0x74, 0x05,                     // 0x6c je 0x73
    0xe8, 0xd6, 0xff,               // 0x6e call 0x47           (putc)
    0xeb, 0xeb,                     // 0x71 jmp 0x5e
    0xbe, lo(message), hi(message), // 0x73 mov si, message
    0xe8, 0xc3, 0xff,               // 0x76 call 0x3c           (puts)
    ...waitSentThenPoweroff                 // 0x79 .. 0x9f
  ], banner)

/**
 * Prints `line` and "\r\n" on COM1 `repeats` times (1 to 65535), as fast as the serial port takes it,
 * waits until the UART has sent the last one and powers off through ACPI as {@link poweroffGuest} does.
 *
 * @since 0.1.0
 * @category constructors
 */
export const floodThenPoweroffGuest = (line: string, repeats: number): Uint8Array => {
  if (!(Number.isInteger(repeats) && repeats >= 1 && repeats <= 0xffff)) {
    throw new RangeError(`repeats must be an integer from 1 to 65535, got ${repeats}`)
  }
  // dprint-ignore
  return sector((message) => [
    0xb9, lo(repeats), hi(repeats), // 0x58 mov cx, repeats
    0xbe, lo(message), hi(message), // 0x5b mov si, message
    0xe8, 0xdb, 0xff,               // 0x5e call 0x3c           (puts; keeps CX)
    0xe2, 0xf8,                     // 0x61 loop 0x5b
    ...waitSentThenPoweroff                 // 0x63 .. 0x89
  ], line)
}

/**
 * The QEMU arguments that boot a guest image from the floppy drive of a bare `pc` machine.
 *
 * @since 0.1.0
 * @category constructors
 */
export const floppyBootArgs = (image: string): ReadonlyArray<string> => [
  "-M",
  "pc",
  "-nodefaults",
  "-display",
  "none",
  "-drive",
  `file=${image},format=raw,if=floppy`
]

/**
 * Writes a guest sector to `name` (default `guest.img`) in `directory` and returns the file's path.
 *
 * @since 0.1.0
 * @category constructors
 */
export const writeGuest = (
  directory: string,
  bytes: Uint8Array,
  name = "guest.img"
): Effect.Effect<string> => {
  const path = NodePath.join(directory, name)
  return Effect.as(Effect.promise(() => NodeFs.writeFile(path, bytes)), path)
}
