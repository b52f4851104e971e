"""wire: a cable with a fixed one-way delay between two network namespaces, in userspace.

This kernel has no netem, so delay comes from here: the process owns a TAP device in each of the
two namespaces and copies every Ethernet frame from one to the other `delay_ms` after it arrived
(each direction its own FIFO; a fixed delay keeps the order, like a long cable). Loss and rate
limits stay in the kernel (nftables numgen, tc tbf) on the devices around it.

    wire.py NS_A IF_A NS_B IF_B DELAY_MS

Prints "ready" once both devices exist (they are created down; the rig configures them), then
forwards until killed. Frames that find the other side's device unable to take them (its queue
full, or down) are dropped, as a real link drops them.
"""
import collections
import ctypes
import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
MAX_FRAME = 65536

_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(name):
    """Moves this thread into /run/netns/NAME (where `ip netns add` keeps it)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def open_tap(name):
    """A TAP device NAME in the current namespace; the device lives as long as the fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def forward(fd_a, fd_b, delay_s):
    queues = {fd_a: collections.deque(), fd_b: collections.deque()}  # frames waiting to leave via fd
    other = {fd_a: fd_b, fd_b: fd_a}
    poller = select.poll()
    for fd in (fd_a, fd_b):
        poller.register(fd, select.POLLIN)
    while True:
        now = time.monotonic()
        due = [q[0][0] for q in queues.values() if q]
        timeout_ms = max(0, (min(due) - now) * 1000) if due else 1000
        for fd, _ in poller.poll(timeout_ms):
            while True:  # drain the device: one wake-up may cover many frames
                try:
                    frame = os.read(fd, MAX_FRAME)
                except BlockingIOError:
                    break
                except OSError:  # the device went down under us
                    break
                queues[other[fd]].append((time.monotonic() + delay_s, frame))
        now = time.monotonic()
        for fd, q in queues.items():
            while q and q[0][0] <= now:
                _, frame = q.popleft()
                try:
                    os.write(fd, frame)
                except OSError:  # full or down: the frame is lost on the wire
                    pass


def run_like_hardware():
    """The wire is the simulated network, not the software under test: a cable does not slow down
    when the machine is busy. Real-time scheduling keeps a loaded machine (other builds,
    stress-ng) from adding its own delay and bursts to the one this wire is asked for; the test
    suite's 2 % loss run saw 2.3 s stalls without it. Poll never spins, so this cannot starve the
    machine (and the kernel caps real-time tasks at 95 % of each second anyway)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except OSError as e:
        print(f"wire.py: no real-time scheduling ({e.strerror}); delay may grow under load",
              file=sys.stderr, flush=True)


def main(argv):
    if len(argv) != 6:
        sys.exit("usage: wire.py NS_A IF_A NS_B IF_B DELAY_MS")
    ns_a, if_a, ns_b, if_b, delay_ms = argv[1:]
    delay_s = float(delay_ms) / 1000
    if delay_s < 0:
        sys.exit(f"wire.py: delay must be >= 0 ms, got {delay_ms}")
    run_like_hardware()
    enter_netns(ns_a)
    fd_a = open_tap(if_a)
    enter_netns(ns_b)
    fd_b = open_tap(if_b)
    print("ready", flush=True)
    forward(fd_a, fd_b, delay_s)


if __name__ == "__main__":
    main(sys.argv)
