"""mpv as the viewer's user runs it, with its displayed frames counted: the command the viewer
prints (pixelpass.player_command, so the live-edge script and low-latency flags are in), plus only
what the measurement needs, as bench/media_latency.cpp does: --no-config, --really-quiet,
--vo=null/--ao=null (no display in a namespace) and a reporting script.

mpv sends a script one "tick" event per displayed frame, but the script runs on its own thread and
reads time-pos when it gets to the event: after a burst (the frames a retransmission had held back
arrive together and mpv, untimed, shows them within a few ms) the first tick already reads the last
frame of the burst and the others read it again. Counting distinct time-pos values therefore missed
~3 of 30 frames per second at 2 % loss and 100 ms RTT while mpv's tick count and drop counters
showed every frame displayed (docs/BENCHMARKS.md). So the script prints every tick with the time-pos
it read, and frames() matches ticks to frames: each tick is one displayed frame, the oldest one
known (by a time-pos read so far) and not yet matched; it was displayed at or before the tick's
clock, which is the display time given (an upper bound: glass-to-glass errs long, never short).

mpv's clock is mapped to Unix time by the smallest (arrival − mpv clock) over all lines;
glass-to-glass is then display − (PTS epoch + time-pos), the PTS-epoch method of media-latency.
A periodic line carries mpv's own counters (frames dropped at the output and at the decoder, shown
late, mistimed), the playback speed (the live-edge script's catch-up) and the demuxer's queue;
speed changes and seeks get a line each."""
import collections
import os
import shlex
import subprocess
import tempfile
import threading
import time

import pixelpass

LUA = r"""
mp.register_event("tick", function()
  io.stdout:write(string.format("PPLAT F %.6f %.6f\n", mp.get_time(), mp.get_property_number("time-pos", -1)))
  io.stdout:flush()
end)
mp.add_periodic_timer(0.05, function()
  io.stdout:write(string.format("PPLAT C %.6f 0\n", mp.get_time()))
  io.stdout:flush()
end)
local function n(name) return mp.get_property_number(name, -1) end
mp.add_periodic_timer(0.5, function()
  io.stdout:write(string.format("PPLAT D %.6f vo_drop=%d dec_drop=%d vo_delayed=%d mistimed=%d speed=%.3f queue=%.3f\n",
    mp.get_time(), n("frame-drop-count"), n("decoder-frame-drop-count"), n("vo-delayed-frame-count"),
    n("mistimed-frame-count"), n("speed"), n("demuxer-cache-duration")))
  io.stdout:flush()
end)
mp.observe_property("speed", "number", function(_, v)
  io.stdout:write(string.format("PPLAT D %.6f speed_change=%.3f\n", mp.get_time(), v or -1))
  io.stdout:flush()
end)
mp.register_event("seek", function()
  io.stdout:write(string.format("PPLAT D %.6f seek=1\n", mp.get_time()))
  io.stdout:flush()
end)
"""


# A frame known (from a later time-pos read) but matched to no tick for this long was never shown:
# the script lags mpv by a few frames at most, and mpv shows a burst within milliseconds. What waits
# longer is a gap in the stream (the host skipped the viewer to a newer keyframe): matched to later
# ticks, its frames made every later frame look later by the gap (~0.9 s after one skip, seen at
# the narrow path while the viewer's, the kernel's and the host's queues were all empty). Not half a
# second: a gap shorter than that (a skip of 14 frames) never had a frame wait that long, one tick
# taking each of its frames in turn, and every later frame looked late by the gap for as long as
# the run lasted (mpv p50 509 ms for 4 s at the narrow path, host-side lag 13-25 ms, session 13).
MAX_PENDING_S = 0.15


def match_ticks(ticks):
    """[(clock s, time-pos s)] per tick, in order → [(clock s, pts s)] per displayed frame.

    Each tick is one displayed frame: the oldest frame known to exist (its time-pos, or one between
    two read values, was read by now) and not matched yet; a jump of time-pos by more than 2 s
    starts the count afresh. When a frame waits unmatched for MAX_PENDING_S, the frames the jump
    before it announced were a gap: the ticks matched to them since are given the frame each read
    instead, and the count goes on from the frame read now. The frame interval is the lower
    quartile of the steps between consecutive distinct time-pos values (snapped to a whole frame
    rate when within 1 %)."""
    read = [pts for _, pts in ticks if pts >= 0]
    steps = sorted(b - a for a, b in zip(read, read[1:]) if b > a)
    if not steps:
        return [(clock, pts) for clock, pts in ticks if pts >= 0][:1]
    step = steps[len(steps) // 4]
    if abs(1 / step - round(1 / step)) < 0.01 * (1 / step):
        step = 1 / round(1 / step)
    base = read[0]
    pending = collections.deque()  # (frame number, clock it became known), not matched to a tick yet
    last = None
    frames = []  # (clock, pts matched, pts read, clock the matched frame became known)
    for clock, pts in ticks:
        if pts < 0:
            continue  # no time-pos yet
        index = round((pts - base) / step)
        if last is None or index < last or (index - last) * step > 2:
            # The first frame, or time-pos jumped (mpv learnt the stream's start time, a seek):
            # count from here.
            base, index = pts, 0
            pending.clear()
            pending.append((index, clock))
        elif index > last:
            pending.extend((n, clock) for n in range(last + 1, index + 1))
        last = index
        if pending and clock - pending[0][1] > MAX_PENDING_S:
            gap_known_at = pending[0][1]
            frames = [(c, r, r, k) if k == gap_known_at else (c, m, r, k) for c, m, r, k in frames]
            pending = collections.deque([(index, clock)])
        if pending:
            n, known_at = pending.popleft()
            frames.append((clock, base + n * step, base + index * step, known_at))
    return [(c, matched) for c, matched, _, _ in frames]


class MpvFrames:
    def __init__(self, url):
        command = shlex.split(pixelpass.player_command(url, pixelpass.PlayerKind.MPV))
        fd, self.script = tempfile.mkstemp(suffix=".lua", prefix="pp-mpv-frames-")
        with os.fdopen(fd, "w") as f:
            f.write(LUA)
        args = [command[0], "--no-config", "--really-quiet", "--vo=null", "--ao=null",
                "--script=" + self.script] + command[1:]
        self.command = " ".join(args)
        self.lines = []  # (kind F or C, arrival unix ms, mpv clock s, time-pos s)
        self.counter_lines = []  # (arrival unix ms, mpv clock s, {counter: value})
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            now_ms = time.time() * 1000
            parts = raw.decode(errors="replace").split()
            if len(parts) >= 3 and parts[0] == "PPLAT" and parts[1] == "D":
                with self.lock:
                    self.counter_lines.append((now_ms, float(parts[2]), dict(kv.split("=", 1) for kv in parts[3:])))
            elif len(parts) == 4 and parts[0] == "PPLAT":
                with self.lock:
                    self.lines.append((parts[1], now_ms, float(parts[2]), float(parts[3])))

    def _offset(self, lines):
        return min(arrival - clock * 1000 for _, arrival, clock, _ in lines)

    def frames(self):
        """Every displayed frame so far: [display unix ms (at the latest), pts s]."""
        with self.lock:
            lines = list(self.lines)
        if not lines:
            return []
        offset = self._offset(lines)
        ticks = [(clock, pts) for kind, _, clock, pts in lines if kind == "F"]
        return [[clock * 1000 + offset, pts] for clock, pts in match_ticks(ticks)]

    def ticks(self):
        """Every tick so far: [unix ms, time-pos s read then] (what the frames are matched from)."""
        with self.lock:
            lines = list(self.lines)
        if not lines:
            return []
        offset = self._offset(lines)
        return [[clock * 1000 + offset, pts] for kind, _, clock, pts in lines if kind == "F"]

    def counters(self):
        """mpv's counters and events: [unix ms, {counter: value}] (clock mapped as in frames())."""
        with self.lock:
            lines, counter_lines = list(self.lines), list(self.counter_lines)
        if not lines:
            return []
        offset = self._offset(lines)
        return [[clock * 1000 + offset, values] for _, clock, values in counter_lines]

    def exited(self):
        code = self.proc.poll()
        if code is None:
            return None
        return f"mpv exited ({code}): {b''.join(self.stderr)[-400:].decode(errors='replace')} [{self.command}]"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.script)
