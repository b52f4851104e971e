"""Python side of audio_rig.sh: a private, headless PipeWire + WirePlumber + pipewire-pulse for a
test, plus the handful of structured looks at it the tests need (pactl's JSON, pw-dump).

    with AudioRig() as rig:
        rig.pactl("load-module", "module-null-sink", "sink_name=x")
        assert rig.default_sink() == "speaker"

The rig's daemons live in their own process group and their own XDG_RUNTIME_DIR, session bus and
state/config dirs; stop() kills the group and deletes the directory.
"""
import json
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

RIG_SCRIPT = Path(__file__).resolve().with_name("audio_rig.sh")


def dead_pid() -> int:
    """A PID that no process has any more: a child that ran and was reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    pid = child.pid
    assert not Path(f"/proc/{pid}").exists(), f"pid {pid} was reused at once"
    return pid



def parse_pw_dump(text: str) -> list:
    """The objects in pw-dump's output. pw-dump 0.3.65 prints one JSON array, and a further array
    of the objects that changed when the registry changes before it quits (an app or link coming
    or going mid-dump: seen as json's "Extra data"). Later arrays update earlier ones by id; an
    entry whose info is null is an object that went away."""
    decoder = json.JSONDecoder()
    objects: dict = {}
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        batch, pos = decoder.raw_decode(text, pos)
        for o in batch:
            if o.get("info") is None and o.get("type") is None:
                objects.pop(o["id"], None)
            else:
                objects[o["id"]] = o
    return list(objects.values())

class AudioRig:
    def __init__(self):
        self.env = None
        self.dir = None

    # ---- lifetime ----

    def start(self) -> "AudioRig":
        out = subprocess.run([str(RIG_SCRIPT), "start"], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"audio rig did not start:\n{out.stderr}")
        env = dict(os.environ)
        for line in out.stdout.splitlines():
            words = shlex.split(line)
            if words[:1] == ["export"]:
                key, _, value = words[1].partition("=")
                env[key] = value
            elif words[:1] == ["unset"]:
                for key in words[1:]:
                    env.pop(key, None)
        self.env = env
        self.dir = Path(env["PP_AUDIO_RIG_DIR"])
        return self

    def stop(self):
        if self.dir is not None:
            subprocess.run([str(RIG_SCRIPT), "stop", str(self.dir)], timeout=30, check=False)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- running things in the rig's session ----

    def run(self, *cmd, check=True, timeout=60, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(c) for c in cmd], env=self.env, capture_output=True, text=True,
                              check=check, timeout=timeout, **kw)

    def popen(self, *cmd, **kw) -> subprocess.Popen:
        return subprocess.Popen([str(c) for c in cmd], env=self.env, **kw)

    def pactl(self, *args) -> str:
        return self.run("pactl", *args).stdout

    def load_module(self, name: str, *args: str) -> int:
        """Loads a Pulse module through pipewire-pulse; returns its index."""
        return int(self.pactl("load-module", name, *args).strip())

    # ---- structured views ----

    def modules(self) -> list:
        """[{name, argument}] in load order (pactl 16's JSON has no index; see module_events)."""
        return [{"name": m["name"], "argument": m.get("argument") or ""}
                for m in json.loads(self.pactl("--format=json", "list", "modules"))]

    def sinks(self) -> list:
        return [s["name"] for s in json.loads(self.pactl("--format=json", "list", "sinks"))]

    def default_sink(self) -> str:
        return self.pactl("get-default-sink").strip()

    def pw_dump(self) -> list:
        return parse_pw_dump(self.run("pw-dump").stdout)

    def node_names(self) -> list:
        return [o["info"]["props"].get("node.name") for o in self.pw_dump()
                if o["type"] == "PipeWire:Interface:Node"]

    def create_lingering_node(self, name: str):
        """A null-audio-sink node that outlives its creator (object.linger), as a crashed process
        that created it through libpipewire would leave it."""
        self.run("pw-cli", "create-node", "adapter",
                 "{ factory.name=support.null-audio-sink media.class=Audio/Sink "
                 f"node.name={name} object.linger=true audio.position=[FL FR] }}")
        self.wait_for(lambda: name in self.node_names(), f"node {name}")

    @property
    def state_file(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "wireplumber" / "restore-stream"

    def state_text(self) -> str:
        return self.state_file.read_text() if self.state_file.exists() else ""

    def wireplumber_pid(self) -> int:
        for o in self.pw_dump():
            props = o.get("info", {}).get("props", {})
            if o["type"] == "PipeWire:Interface:Client" and props.get("application.name") == "WirePlumber":
                return int(props["pipewire.sec.pid"])
        raise AssertionError("WirePlumber is not connected")

    def stop_wireplumber(self):
        pid = self.wireplumber_pid()
        os.kill(pid, signal.SIGTERM)
        self.wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                      Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z",
                      "WirePlumber to exit")

    # ---- streams and WirePlumber's memory ----

    def play(self, app: str) -> subprocess.Popen:
        """A silent playback stream with application.name=app, and its sink-input index."""
        proc = self.popen("pacat", "--playback", f"--client-name={app}",
                          f"--property=application.name={app}", "/dev/zero",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.sink_input = self.wait_for(lambda: self.sink_input_of(app), f"{app}'s stream")
        return proc

    def sink_input_of(self, app: str):
        for si in json.loads(self.pactl("--format=json", "list", "sink-inputs")):
            if si.get("properties", {}).get("application.name") == app:
                return si["index"]
        return None

    def remember_target(self, app: str, sink: str):
        """Has WirePlumber remember `sink` as app's target the way a user's move does: a stream
        of app moved to the sink, then gone. Waits until WirePlumber saved it."""
        proc = self.play(app)
        remembered = lambda: f"application.name:{app}:target={sink}" in self.state_text()
        try:
            # WirePlumber restores a new stream's remembered target shortly after it appears; a
            # move made before that is overwritten (seen about one run in three). So the move is
            # repeated until WirePlumber has saved it, as a user would move it again.
            for _ in range(6):
                self.pactl("move-sink-input", str(proc.sink_input), sink)
                try:
                    self.wait_for(remembered, "", timeout=10.0)
                    break
                except AssertionError:
                    continue
            self.wait_for(remembered, f"WirePlumber to remember {app} -> {sink}", timeout=1.0)
        finally:
            proc.terminate()
            proc.wait()
        self.wait_for(lambda: self.sink_input_of(app) is None, f"{app}'s stream to go")

    def provoke_wireplumber_save(self, app: str = "SaveProvoker"):
        """Makes WirePlumber write its state file from memory (a stream's volume changes; it saves
        a second later) and waits for that write."""
        proc = self.play(app)
        try:
            self.pactl("set-sink-input-volume", str(proc.sink_input), "37%")
            self.wait_for(lambda: f"application.name:{app}:volume" in self.state_text(),
                          "WirePlumber to save its state")
        finally:
            proc.terminate()
            proc.wait()

    # ---- waiting ----

    @staticmethod
    def wait_for(predicate, what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


class ModuleEvents:
    """`pactl subscribe` in the background: the order in which modules really went away. Lines are
    read on a thread into a queue, so every wait has a deadline (a bare readline() waited forever
    when an expected event never came, and the suite died at meson's timeout with no message)."""

    def __init__(self, rig: AudioRig, timeout: float = 30.0):
        self.timeout = timeout
        self.proc = rig.popen("pactl", "subscribe", stdout=subprocess.PIPE, text=True)
        self.queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        # pactl prints nothing until something happens; a sink that comes and goes proves it is
        # listening before the test acts. pactl may not have subscribed yet when the first probe
        # comes and goes (seen once in a 20-round soak: "saw []"), so the probe is repeated until
        # one is heard, within the deadline.
        self.lines = []
        deadline = time.monotonic() + timeout
        while True:
            idx = rig.load_module("module-null-sink", "sink_name=pp_subscribe_probe")
            rig.pactl("unload-module", str(idx))
            if self._heard(f"'remove' on module #{idx}", min(deadline, time.monotonic() + 2.0)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"pactl subscribe: heard none of its probes within {timeout:.0f} s; "
                                     f"saw {self.lines[-10:]}")

    def _heard(self, text: str, until: float) -> bool:
        """Whether a line holding `text` comes before `until` (monotonic clock)."""
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                raise AssertionError(f"pactl subscribe ended before {text!r}")
            self.lines.append(line.strip())
            if text in line:
                return True

    def _pump(self):
        for line in self.proc.stdout:
            self.queue.put(line)
        self.queue.put(None)  # pactl ended

    def _next_line(self, deadline: float, waiting_for: str) -> str:
        try:
            line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"pactl subscribe: no {waiting_for} within {self.timeout:.0f} s; "
                                 f"saw {self.lines[-10:]}") from None
        if line is None:
            raise AssertionError(f"pactl subscribe ended before {waiting_for}")
        self.lines.append(line.strip())
        return line

    def _read_until(self, text: str):
        deadline = time.monotonic() + self.timeout
        while text not in self._next_line(deadline, repr(text)):
            pass

    def removed_modules(self, expect: int) -> list:
        """The indices of the next `expect` removed modules, in order."""
        deadline = time.monotonic() + self.timeout
        out = []
        while len(out) < expect:
            line = self._next_line(deadline, f"removal of {expect} modules (got {out})")
            if "'remove' on module #" in line:
                out.append(int(line.rsplit("#", 1)[1]))
        return out

    def close(self):
        self.proc.terminate()
        self.proc.wait()
