/**
 * The python3 program that sends a descriptor with SCM_RIGHTS (Node cannot attach ancillary
 * data to a write). Kept in the code, run with `python3 -c`, so that descriptor passing needs no
 * file beside the library and survives bundling.
 *
 * @internal
 */
export const sendFdScript = String.raw`"""Send one file descriptor over a UNIX socket as SCM_RIGHTS ancillary data.

Usage: python3 -c SCRIPT SOCKET_FD FD

Both descriptors are inherited from the parent. One space byte carries the
descriptor: a QMP monitor skips whitespace between messages and keeps the
received descriptor for the next getfd or add-fd command.

The socket's open file description is shared with the parent, so its
blocking mode is left as it is; a full send buffer is waited out with select.
Exit status: 0 sent, 2 bad usage or descriptors, 3 send failed.
"""
import array
import os
import select
import socket
import sys


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: send-fd SOCKET_FD FD\n")
        return 2
    try:
        sock_fd = int(argv[1])
        fd = int(argv[2])
        os.fstat(fd)
        sock = socket.socket(fileno=sock_fd)
    except (ValueError, OSError) as e:
        sys.stderr.write("send-fd: bad descriptor: %s\n" % e)
        return 2
    if sock.family != socket.AF_UNIX:
        sys.stderr.write("send-fd: descriptor %d is not a UNIX socket\n" % sock_fd)
        return 2
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    while True:
        try:
            sent = sock.sendmsg([b" "], ancillary)
        except (BlockingIOError, InterruptedError):
            select.select([], [sock], [])
            continue
        except OSError as e:
            sys.stderr.write("send-fd: sendmsg failed: %s\n" % e)
            return 3
        if sent == 1:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
`
