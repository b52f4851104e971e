"""Tiny UDP helper run inside a netsim namespace (the NAT-behaviour test drives it).

  serve IP PORT[,PORT...] SECONDS     print {"port": local, "from": "ip:port", "data": text} per packet
  sendrecv PORT SECONDS IP:PORT...    from 0.0.0.0:PORT send "probe" to each, then print what arrives
  send IP PORT IP:PORT TEXT           one datagram from IP:PORT
"""
import json
import select
import socket
import sys
import time


def parse(dest):
    ip, port = dest.rsplit(":", 1)
    return ip, int(port)


def pump(socks, seconds):
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(socks, [], [], left)
        for s in ready:
            data, src = s.recvfrom(2048)
            print(json.dumps({"port": s.getsockname()[1], "from": f"{src[0]}:{src[1]}",
                              "data": data.decode(errors="replace")}), flush=True)


def main(argv):
    mode = argv[1]
    if mode == "serve":
        socks = []
        for port in argv[3].split(","):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((argv[2], int(port)))
            socks.append(s)
        print(json.dumps({"ready": True}), flush=True)
        pump(socks, float(argv[4]))
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
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
