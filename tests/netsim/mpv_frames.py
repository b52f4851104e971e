"""mpv as the viewer's user runs it, with its displayed frames counted: the command the viewer
prints (pixelpass.player_command, so the live-edge script and low-latency flags are in), plus only
what the measurement needs, as bench/media_latency.cpp does: --no-config, --really-quiet,
--vo=null/--ao=null (no display in a namespace) and a reporting script that prints, after each
displayed frame, mpv's clock and the frame's time-pos (the TS PTS as written). mpv's clock is mapped
to Unix time by the smallest (arrival − mpv clock) over all lines; glass-to-glass is then
display − (PTS epoch + time-pos), the PTS-epoch method of media-latency."""
import os
import shlex
import subprocess
import tempfile
import threading
import time

import pixelpass

LUA = r"""
local last = nil
mp.register_event("tick", function()
  local pts = mp.get_property_number("time-pos")
  if pts and pts ~= last then
    last = pts
    io.stdout:write(string.format("PPLAT F %.6f %.6f\n", mp.get_time(), pts))
    io.stdout:flush()
  end
end)
mp.add_periodic_timer(0.05, function()
  io.stdout:write(string.format("PPLAT C %.6f 0\n", mp.get_time()))
  io.stdout:flush()
end)
"""


class MpvFrames:
    def __init__(self, url):
        command = shlex.split(pixelpass.player_command(url, pixelpass.PlayerKind.MPV))
        fd, self.script = tempfile.mkstemp(suffix=".lua", prefix="pp-mpv-frames-")
        with os.fdopen(fd, "w") as f:
            f.write(LUA)
        args = [command[0], "--no-config", "--really-quiet", "--vo=null", "--ao=null",
                "--script=" + self.script] + command[1:]
        self.command = " ".join(args)
        self.lines = []  # (kind, arrival unix ms, mpv clock s, pts s)
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            now_ms = time.time() * 1000
            parts = raw.decode(errors="replace").split()
            if len(parts) == 4 and parts[0] == "PPLAT":
                with self.lock:
                    self.lines.append((parts[1], now_ms, float(parts[2]), float(parts[3])))

    def frames(self):
        """Every displayed frame so far: [display unix ms, pts s]."""
        with self.lock:
            lines = list(self.lines)
        if not lines:
            return []
        offset = min(arrival - clock * 1000 for _, arrival, clock, _ in lines)
        return [[clock * 1000 + offset, pts] for kind, _, clock, pts in lines if kind == "F"]

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
