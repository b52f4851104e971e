"""`--app NAME` against a real headless PipeWire + WirePlumber + pipewire-pulse (audio_rig.sh):
tone apps (gst-launch audiotestsrc → pulsesink, whose client-name becomes application.name), the
host's real pipeline and QUIC on loopback, and the viewer's stream decoded by a real GStreamer
pipeline whose PCM is checked by spectrum (Goertzel, pure Python: numpy is not required).

    appA 440 Hz, appB 1000 Hz, appC 2000 Hz; `--app appA --app APPC` (case-insensitive)

Checks: the stream holds the matching apps and never appB; the speakers still get every app;
appA restarting and appC starting mid-share are followed; stats list the matching apps; the
default sink never changes; `kill -9` on the host leaves no pixelpass object in pw-dump/pactl.
Run by meson with PIXELPASS_CLI, PIXELPASS_LIBRARY and PYTHONPATH set.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audiorig import AudioRig  # noqa: E402

CLI = os.environ.get("PIXELPASS_CLI")
RATE = 16000          # the decoded stream is resampled to this, mono
WINDOW = RATE // 2    # 0.5 s: 2 Hz bins, so 440/1000/2000 Hz sit exactly on a bin

pytestmark = pytest.mark.skipif(not shutil.which("gst-launch-1.0"), reason="needs gst-launch-1.0")


# ---- spectrum ------------------------------------------------------------------------------------

def tone_share(samples, freq):
    """The share of the window's energy at `freq` (1.0 for a pure tone on a bin, ~0 when absent)."""
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    energy = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
        energy += x * x
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(f)|^2
    if energy <= 0.0:
        return 0.0
    return (2.0 * power / n) / energy


def rms(samples):
    return math.sqrt(sum(x * x for x in samples) / len(samples)) if samples else 0.0


class PcmTap:
    """A child process writing s16le mono PCM at RATE to stdout, read on a thread; `window()` is
    the latest 0.5 s."""

    def __init__(self, cmd, env=None):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.samples = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read(3200)
            if not chunk:
                return
            values = memoryview(chunk[: len(chunk) // 2 * 2]).cast("h")
            with self.lock:
                self.samples.extend(v / 32768.0 for v in values)
                del self.samples[:-RATE * 2]

    def window(self):
        with self.lock:
            return list(self.samples[-WINDOW:]) if len(self.samples) >= WINDOW else []

    def shares(self, *freqs):
        w = self.window()
        return {f: tone_share(w, f) for f in freqs}, rms(w)

    def close(self):
        self.proc.kill()
        self.proc.wait()


def stream_tap(url):
    """The viewer's stream: HTTP → MPEG-TS → AAC → PCM (video dropped)."""
    return PcmTap(["gst-launch-1.0", "-q", "souphttpsrc", f"location={url}", "is-live=true", "!",
                   "tsdemux", "name=d", "d.", "!", "queue", "!", "aacparse", "!", "avdec_aac", "!",
                   "audioconvert", "!", "audioresample", "!",
                   f"audio/x-raw,format=S16LE,rate={RATE},channels=1", "!", "fdsink", "fd=1",
                   "d.", "!", "queue", "!", "fakesink"])


def speaker_tap(rig):
    """What the host's own speakers get: the rig's default sink's monitor."""
    return PcmTap(["pacat", "--record", "-d", "speaker.monitor", "--raw", "--format=s16le",
                   f"--rate={RATE}", "--channels=1", "--latency-msec=50"], env=rig.env)


def wait_for(predicate, what, timeout=45.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = predicate()
        if ok:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last}")


def diagnosed(rig, describe):
    """wait_for that, on timeout, adds what the host and the audio graph looked like."""
    def wait(predicate, what, timeout=45.0):
        try:
            return wait_for(predicate, what, timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{describe()}\nlinks (out node, port, in node, port, state): "
                                 f"{links_of(rig)}\nnodes: {rig.node_names()}\n"
                                 f"default sink: {rig.default_sink()}") from None
    return wait


def holds(tap, present=(), absent=(), silent=False):
    """A predicate for wait_for: the window has each `present` tone (over a fifth of its energy)
    and none of the `absent` ones (under 1 %); `silent`: nothing at all."""
    def check():
        shares, level = tap.shares(*present, *absent)
        if silent:
            return level < 0.003, {"rms": level}
        ok = level > 0.01 and all(shares[f] > 0.2 for f in present) and all(shares[f] < 0.01 for f in absent)
        return ok, {"rms": round(level, 4), **{f: round(s, 4) for f, s in shares.items()}}
    return check


# ---- the rig's apps ------------------------------------------------------------------------------

def tone_app(rig, name, freq):
    proc = rig.popen("gst-launch-1.0", "-q", "audiotestsrc", f"freq={freq}", "volume=0.3", "is-live=true",
                     "!", "audio/x-raw,rate=48000,channels=2", "!", "pulsesink", f"client-name={name}",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rig.wait_for(lambda: rig.sink_input_of(name) is not None, f"{name}'s stream")
    return proc


def stop(proc):
    proc.kill()
    proc.wait()


def links_of(rig):
    return [(o["info"]["output-node-id"], o["info"]["output-port-id"], o["info"]["input-node-id"],
             o["info"]["input-port-id"], o["info"]["state"])
            for o in rig.pw_dump() if o["type"] == "PipeWire:Interface:Link"]


def pixelpass_objects(rig):
    """Every PipeWire object or Pulse sink/source that is pixelpass's."""
    found = []
    for o in rig.pw_dump():
        props = o.get("info", {}).get("props", {}) or {}
        text = json.dumps(props)
        if "pixelpass" in text:
            found.append((o["type"], props.get("node.name") or props.get("application.name")))
    for kind in ("sinks", "sources", "modules"):
        out = rig.pactl("list", "short", kind)
        found += [(kind, line) for line in out.splitlines() if "pixelpass" in line]
    return found


@pytest.fixture
def rig():
    with AudioRig() as r:
        assert r.default_sink() == "speaker"
        yield r


# ---- Python binding ------------------------------------------------------------------------------

def test_python_app_audio_follows_matching_apps_only(rig, monkeypatch):
    import pixelpass

    for key in ("PP_AUDIO_RIG_DIR", "XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                "DBUS_SESSION_BUS_ADDRESS"):
        monkeypatch.setenv(key, rig.env[key])
    for key in ("PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE", "PIPEWIRE_REMOTE"):
        monkeypatch.delenv(key, raising=False)
    default_source = rig.pactl("get-default-source").strip()
    app_a, app_b = tone_app(rig, "appA", 440), tone_app(rig, "appB", 1000)
    app_c = None
    events = []
    speakers = speaker_tap(rig)
    tap = None
    try:
        opts = dict(source="test", bind_address="127.0.0.1", no_stun=True, no_port_mapping=True, no_relay=True,
                    encoder="x264", apps=["appA", "APPC"])
        with pixelpass.Host(callback=lambda e: events.append(e.message), **opts) as host:
            host.start()
            assert host.stats()["stream"]["audio_apps"]["wanted"] == ["appA", "APPC"]
            check = diagnosed(rig, lambda: f"host events: {events}\nstream: {host.stats()['stream']}")
            with pixelpass.Viewer.connect(host.ticket(), no_stun=True, no_relay=True) as viewer:
                tap = stream_tap(viewer.url)
                check(holds(tap, present=[440], absent=[1000]), "appA (440 Hz) alone in the stream")
                apps = host.stats()["stream"]["audio_apps"]
                assert apps["capture_sink"] == f"pixelpass_capture_{os.getpid()}"
                assert [(a["name"], a["matched"], a["pid"]) for a in apps["matching"]] == \
                    [("appA", "appA", app_a.pid)], apps
                assert all(a["links"] >= 1 for a in apps["matching"]), apps
                # The speakers still get both apps: the stream was linked, not moved.
                check(holds(speakers, present=[440, 1000]), "both apps on the speakers")
                assert rig.default_sink() == "speaker"

                # appA restarts its stream: silence while it is gone, then it is followed.
                stop(app_a)
                check(holds(tap, silent=True), "silence once appA stopped")
                restarted = time.monotonic()
                app_a = tone_app(rig, "appA", 440)
                check(holds(tap, present=[440], absent=[1000]), "the restarted appA in the stream")
                print(f"restarted appA heard in the stream after {time.monotonic() - restarted:.2f} s")

                # A third matching app (matched case-insensitively) is added.
                started = time.monotonic()
                app_c = tone_app(rig, "appC", 2000)
                check(holds(tap, present=[440, 2000], absent=[1000]), "appA and appC in the stream")
                print(f"appC heard in the stream after {time.monotonic() - started:.2f} s")
                names = sorted((a["name"], a["matched"]) for a in host.stats()["stream"]["audio_apps"]["matching"])
                assert names == [("appA", "appA"), ("appC", "APPC")]
                check(holds(speakers, present=[440, 1000, 2000]), "all three apps on the speakers")
        # The host is gone: so is everything it made.
        rig.wait_for(lambda: not pixelpass_objects(rig), "pixelpass's objects to go", timeout=15)
        assert rig.default_sink() == "speaker"
        assert rig.pactl("get-default-source").strip() == default_source
        assert any("audio: capturing appA" in m for m in events), events
    finally:
        for p in (app_a, app_b, app_c):
            if p:
                stop(p)
        speakers.close()
        if tap:
            tap.close()


# ---- CLI -----------------------------------------------------------------------------------------

@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_cli_app_audio_waits_then_captures_and_kill9_leaves_nothing(rig):
    default_source = rig.pactl("get-default-source").strip()
    app_b = tone_app(rig, "appB", 1000)
    app_a = None
    host = rig.popen(CLI, "host", "--source", "test", "--app", "appA", "--bind", "127.0.0.1", "--no-stun",
                     "--no-relay", "--no-port-mapping", "--encoder", "x264",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = []
    view = tap = None
    check = diagnosed(rig, lambda: "host log: " + "".join(log))
    try:
        ticket = host.stdout.readline().strip()
        assert ticket.startswith("pxp"), host.stderr.read() if host.poll() is not None else ticket
        threading.Thread(target=lambda: log.extend(host.stderr), daemon=True).start()
        view = rig.popen(CLI, "view", ticket, "--player", "none", stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
        url = view.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        tap = stream_tap(url)
        # Nothing matches yet: it says so, and the stream carries silence, not appB.
        rig.wait_for(lambda: any("waiting for one" in line for line in log), "the 'waiting' message")
        check(holds(tap, silent=True), "silence while no app matches")
        started = time.monotonic()
        app_a = tone_app(rig, "appA", 440)
        check(holds(tap, present=[440], absent=[1000]), "appA alone in the stream")
        print(f"appA heard in the stream {time.monotonic() - started:.2f} s after it started")
        sink = f"pixelpass_capture_{host.pid}"
        assert sink in rig.node_names()
        links = [o for o in rig.pw_dump() if o["type"] == "PipeWire:Interface:Link"]
        assert len(links) >= 2
        assert rig.default_sink() == "speaker"

        host.kill()  # SIGKILL: no destructor runs
        host.wait()
        rig.wait_for(lambda: not pixelpass_objects(rig), "the killed host's objects to go", timeout=15)
        assert sink not in rig.node_names()
        assert rig.default_sink() == "speaker"
        assert rig.pactl("get-default-source").strip() == default_source
        assert rig.sink_input_of("appA") is not None and rig.sink_input_of("appB") is not None
        assert any("audio: capturing appA" in line for line in log), log
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        for p in (view, app_a, app_b):
            if p:
                p.kill()
                p.wait()
        if tap:
            tap.close()


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_cli_app_without_pipewire_is_one_clear_line(tmp_path):
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path), PULSE_SERVER=f"unix:{tmp_path}/none")
    env.pop("PIPEWIRE_REMOTE", None)
    out = subprocess.run([CLI, "host", "--source", "test", "--app", "appA", "--bind", "127.0.0.1", "--no-stun",
                          "--no-relay", "--no-port-mapping"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert not out.stdout.strip(), "no ticket may be printed"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--app" in lines[0] and "needs PipeWire" in lines[0], out.stderr
