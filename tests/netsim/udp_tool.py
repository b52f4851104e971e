"""Tiny UDP helper run inside a netsim namespace (the NAT-behaviour test drives it).

  serve IP PORT[,PORT...] SECONDS [COUNT]
                                      print {"port": local, "from": "ip:port", "data": text} per packet;
                                      ends after SECONDS, or after COUNT packets
  sendrecv PORT SECONDS IP:PORT...    from 0.0.0.0:PORT send "probe" to each, then print what arrives
                                      until SECONDS pass or a datagram "done" arrives
  send IP PORT IP:PORT TEXT           one datagram from IP:PORT
  blast IP:PORT COUNT SIZE KBIT        COUNT datagrams of SIZE bytes, paced at KBIT kbit/s
  echo IP PORT SECONDS                 sends every datagram back to its sender
  rtt IP:PORT COUNT                    COUNT probes 0.2 s apart to an echo; prints {"rtts_ms": [...]}
  count IP PORT IDLE_S                 counts datagrams until none came for IDLE_S; prints
                                      {"packets", "bytes", "seconds"} (first to last arrival)
"""
import json
import select
import socket
import sys
import time


def parse(dest):
    ip, port = dest.rsplit(":", 1)
    return ip, int(port)


def pump(socks, seconds, count=None):
    """Prints each datagram; ends after `seconds`, after `count` datagrams, or at a "done" one
    (the caller's end marker, so a slow machine never cuts a test's window short)."""
    end = time.monotonic() + seconds
    seen = 0
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(socks, [], [], left)
        for s in ready:
            data, src = s.recvfrom(2048)
            if data == b"done":
                return
            print(json.dumps({"port": s.getsockname()[1], "from": f"{src[0]}:{src[1]}",
                              "data": data.decode(errors="replace")}), flush=True)
            seen += 1
            if count is not None and seen >= count:
                return


def main(argv):
    mode = argv[1]
    if mode == "serve":
        socks = []
        for port in argv[3].split(","):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((argv[2], int(port)))
            socks.append(s)
        print(json.dumps({"ready": True}), flush=True)
        pump(socks, float(argv[4]), int(argv[5]) if len(argv) > 5 else None)
    elif mode == "sendrecv":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(argv[2])))
        for dest in argv[4:]:
            s.sendto(b"probe", parse(dest))
        print(json.dumps({"ready": True}), flush=True)
        pump([s], float(argv[3]))
    elif mode == "send":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((argv[2], int(argv[3])))
        s.sendto(argv[5].encode(), parse(argv[4]))
    elif mode == "blast":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        count, size, kbit = int(argv[3]), int(argv[4]), float(argv[5])
        gap = size * 8 / (kbit * 1000)
        start = time.monotonic()
        for i in range(count):
            # Paced against the start, not the previous send, so a late wake-up does not slow us.
            delay = start + i * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s.sendto(i.to_bytes(4, "big") + bytes(size - 4), parse(argv[2]))
    elif mode == "echo":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((argv[2], int(argv[3])))
        print(json.dumps({"ready": True}), flush=True)
        end = time.monotonic() + float(argv[4])
        while (left := end - time.monotonic()) > 0:
            if select.select([s], [], [], left)[0]:
                data, src = s.recvfrom(2048)
                s.sendto(data, src)
    elif mode == "rtt":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtts = []
        for i in range(int(argv[3])):
            sent = time.monotonic()
            s.sendto(i.to_bytes(4, "big"), parse(argv[2]))
            while select.select([s], [], [], 1.0)[0]:
                if int.from_bytes(s.recv(2048)[:4], "big") == i:
                    rtts.append((time.monotonic() - sent) * 1000)
                    break
            time.sleep(max(0.0, sent + 0.2 - time.monotonic()))
        print(json.dumps({"rtts_ms": rtts}), flush=True)
    elif mode == "count":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A deep buffer, so a slow (loaded) reader loses nothing the network delivered.
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)
        s.bind((argv[2], int(argv[3])))
        print(json.dumps({"ready": True}), flush=True)
        packets = nbytes = 0
        first = last = None
        idle = float(argv[4])
        while True:
            ready, _, _ = select.select([s], [], [], idle if first is not None else 60)
            if not ready:
                break
            data = s.recv(65536)
            last = time.monotonic()
            first = first or last
            packets += 1
            nbytes += len(data)
        print(json.dumps({"packets": packets, "bytes": nbytes,
                          "seconds": (last - first) if first else 0}), flush=True)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
