"""A pixelpass peer inside a netsim namespace, driven by the tests over stdin/stdout (JSON lines).

  peer.py host OPTIONS_JSON       starts a synthetic host; prints {"ticket", "stats"}; then answers
                                  "stats" with the stats and exits on "quit" or end of input
  peer.py view TICKET OPTIONS_JSON BYTES
                                  connects, reads BYTES of the stream through the local URL, prints
                                  {"ok", "connect_ms", "first_byte_ms", "bytes", "stats"} or
                                  {"ok": false, "code", "error"}; with BYTES < 0 it keeps reading
                                  and answers "stats" lines until "quit" ("pace KB/S",
                                  "pause SECONDS" and "rcvbuf BYTES" make it read like a
                                  real-time or a paused player); with the option
                                  "mpv": true, mpv plays it instead (mpv_frames) and "stats" adds
                                  its displayed frames [display unix ms, pts s]
Runs with PYTHONPATH at bindings/python and PIXELPASS_LIBRARY at the built library.
"""
import json
import socket
import sys
import threading
import time
import urllib.request

import pixelpass
from mpv_frames import MpvFrames
from ts_frames import TsFrames


def out(obj):
    print(json.dumps(obj), flush=True)


def collector(events, path_events):
    """An event callback keeping every message, and PATH_CHANGED details with their time."""
    def on_event(e):
        events.append(e.message)
        if e.type == pixelpass.EventType.PATH_CHANGED:
            path_events.append(dict(e.json, viewer_id=e.viewer_id, at=time.monotonic()))
        elif e.type == pixelpass.EventType.READY and "path" in e.json:
            path_events.append({"ready": e.json["path"], "at": time.monotonic()})
    return on_event


def host(options):
    events, path_events = [], []
    options.setdefault("source", "synthetic")
    h = pixelpass.Host(callback=collector(events, path_events), **options)
    try:
        h.start()
    except pixelpass.PixelpassError as e:
        out({"ok": False, "code": int(e.code), "error": str(e)})
        return
    out({"ok": True, "ticket": h.ticket(), "stats": h.stats(), "events": list(events)})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            out({"stats": h.stats(), "events": list(events), "path_events": list(path_events)})
        elif cmd == "quit":
            break
    h.close()


def view(ticket, options, want):
    # frames=True: count the video frames arriving (ts_frames), with their PTS and arrival time.
    options_frames = options.pop("frames", False)
    options_mpv = options.pop("mpv", False)
    start = time.monotonic()
    events, path_events = [], []
    try:
        v = pixelpass.Viewer.connect(ticket, callback=collector(events, path_events), **options)
    except pixelpass.PixelpassError as e:
        out({"ok": False, "code": int(e.code), "error": str(e), "events": list(events)})
        return
    connect_ms = (time.monotonic() - start) * 1000
    if options_mpv:
        watch_with_mpv(v, connect_ms, events, path_events)
        return
    got = 0
    first_byte_ms = None
    with urllib.request.urlopen(v.url, timeout=30) as r:
        if want >= 0:
            while got < want:
                chunk = r.read(min(65536, want - got))
                if not chunk:
                    break
                if first_byte_ms is None:
                    first_byte_ms = (time.monotonic() - start) * 1000
                got += len(chunk)
            out({"ok": got >= want, "connect_ms": connect_ms, "first_byte_ms": first_byte_ms,
                 "bytes": got, "stats": v.stats(), "events": list(events)})
            # Stay connected (the host's view of us is checked next) until told to go.
            for line in sys.stdin:
                cmd = line.strip()
                if cmd == "stats":
                    out({"stats": v.stats(), "events": list(events), "path_events": list(path_events)})
                elif cmd == "quit":
                    break
        else:
            # "pace KBYTES_PER_S" reads at most that fast from then on, as a player playing in
            # real time does (0: as fast as it comes); "pause SECONDS" stops reading that long,
            # as a paused player does.
            state = {"bytes": 0, "stop": False, "error": None, "last": time.monotonic(), "rate": 0,
                     "pause_until": 0.0}
            ts = TsFrames() if options_frames else None

            def pump():
                tokens, refilled = 0.0, time.monotonic()
                try:
                    while not state["stop"]:
                        now = time.monotonic()
                        if now < state["pause_until"]:
                            time.sleep(0.01)  # the pause is the scenario, not synchronisation
                            continue
                        want = 65536
                        if state["rate"]:
                            tokens = min(tokens + (now - refilled) * state["rate"], state["rate"] * 0.1)
                            refilled = now
                            if tokens < 4096:
                                time.sleep((4096 - tokens) / state["rate"])
                                continue
                            want = min(want, int(tokens))
                        chunk = r.read1(want)
                        tokens -= len(chunk)
                        if not chunk:
                            break
                        if ts:
                            ts.feed(chunk)
                        state["bytes"] += len(chunk)
                        state["last"] = time.monotonic()
                except Exception as e:  # reported on the next "stats"
                    state["error"] = str(e)

            t = threading.Thread(target=pump, daemon=True)
            t.start()
            out({"ok": True, "connect_ms": connect_ms, "stats": v.stats(), "path_events": list(path_events)})
            for line in sys.stdin:
                cmd = line.strip()
                if cmd == "stats":
                    out({"bytes": state["bytes"], "idle_s": time.monotonic() - state["last"], "now": time.monotonic(),
                         "error": state["error"], "stats": v.stats(), "events": list(events),
                         "path_events": list(path_events), "frames": list(ts.frames) if ts else None})
                elif cmd.startswith("pace "):
                    state["rate"] = float(cmd.split()[1]) * 1000
                    out({"rate": state["rate"]})
                elif cmd.startswith("rcvbuf "):  # a player with a fixed receive buffer (no autotuning)
                    r.fp.raw._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(cmd.split()[1]))
                    out({"rcvbuf": r.fp.raw._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)})
                elif cmd.startswith("pause "):
                    state["pause_until"] = time.monotonic() + float(cmd.split()[1])
                    out({"paused_unix_ms": time.time() * 1000})
                elif cmd == "quit":
                    break
            state["stop"] = True
    v.close()


def watch_with_mpv(v, connect_ms, events, path_events):
    """mpv on the viewer's URL until "quit"; "stats" answers carry the frames it displayed."""
    mpv = MpvFrames(v.url)
    out({"ok": True, "connect_ms": connect_ms, "stats": v.stats(), "path_events": list(path_events),
         "mpv_command": mpv.command})
    try:
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "stats":
                out({"error": mpv.exited(), "stats": v.stats(), "events": list(events), "mpv": mpv.frames(),
                     "mpv_ticks": mpv.ticks(), "mpv_counters": mpv.counters(), "path_events": list(path_events)})
            elif cmd == "quit":
                break
    finally:
        mpv.stop()
        v.close()


def main(argv):
    if argv[1] == "host":
        host(json.loads(argv[2]))
    elif argv[1] == "view":
        view(argv[2], json.loads(argv[3]), int(argv[4]))
    else:
        sys.exit("usage: peer.py host OPTIONS | view TICKET OPTIONS BYTES")


if __name__ == "__main__":
    main(sys.argv)
