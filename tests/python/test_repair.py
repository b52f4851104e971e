"""pixelpass.repair() through the binding, against a real headless PipeWire + WirePlumber +
pipewire-pulse started for these tests (tests/integration/audio_rig.sh via audiorig.py), and the
C API's buffer convention for an action: asking for the size must not run a second repair.
"""
import ctypes
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import pixelpass

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from audiorig import AudioRig, dead_pid  # noqa: E402

HAVE_PIPEWIRE = os.environ.get("PIXELPASS_HAVE_PIPEWIRE") == "1"
RIG_PROGRAMS = ("pipewire", "wireplumber", "pipewire-pulse", "dbus-daemon", "pactl", "pacat",
                "pw-cli", "pw-dump", "setsid", "ps")
needs_rig = pytest.mark.skipif(
    not HAVE_PIPEWIRE or not all(shutil.which(p) for p in RIG_PROGRAMS),
    reason="built without PipeWire support, or the PipeWire daemons are not installed")

RIG_VARIABLES = ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                 "DBUS_SESSION_BUS_ADDRESS")


@pytest.fixture
def rig(monkeypatch):
    """A private audio stack, and this process's environment pointed at it (libpulse and
    libpipewire read it at connect time, inside the library)."""
    with AudioRig() as r:
        for key in RIG_VARIABLES:
            monkeypatch.setenv(key, r.env[key])
        for key in ("PULSE_SERVER", "PIPEWIRE_REMOTE", "PIPEWIRE_RUNTIME_DIR"):
            monkeypatch.delenv(key, raising=False)
        yield r


def dead_pair(rig):
    pid = dead_pid()
    sink = rig.load_module("module-null-sink", f"sink_name=pixelpass_capture_{pid}")
    loop = rig.load_module("module-loopback", f"source=pixelpass_capture_{pid}.monitor", "sink=speaker")
    return pid, sink, loop


def capture_modules(rig):
    return [m["argument"] for m in rig.modules() if "pixelpass_capture_" in m["argument"]]


def test_no_audio_server_raises(monkeypatch):
    with tempfile.TemporaryDirectory() as empty:
        monkeypatch.setenv("XDG_RUNTIME_DIR", empty)
        monkeypatch.setenv("XDG_STATE_HOME", empty)
        monkeypatch.delenv("PULSE_SERVER", raising=False)
        monkeypatch.delenv("PIPEWIRE_REMOTE", raising=False)
        with pytest.raises(pixelpass.PixelpassError) as err:
            pixelpass.repair(dry_run=True)
    if HAVE_PIPEWIRE:
        assert err.value.code == pixelpass.Result.IO
        assert "no PipeWire/PulseAudio server reachable" in err.value.detail
    else:
        assert isinstance(err.value, pixelpass.UnsupportedError)
        assert "built without PipeWire support" in err.value.detail


@needs_rig
def test_dry_run_then_repair_then_clean(rig):
    pid, sink, loop = dead_pair(rig)
    rig.load_module("module-null-sink", f"sink_name=pixelpass_capture_{os.getpid()}")

    report = pixelpass.repair(dry_run=True)
    assert report["dry_run"] is True and report["clean"] is False
    assert [(i["kind"], i["id"], i["pid"]) for i in report["removed"]] == [
        ("loopback", loop, pid), ("sink", sink, pid)]
    assert [(i["kind"], i["reason"]) for i in report["skipped"]] == [
        ("sink", f"owner {os.getpid()} is alive (this process)")]
    assert len(capture_modules(rig)) == 3

    report = pixelpass.repair()
    assert report["dry_run"] is False and report["clean"] is True and report["failed"] == []
    assert [(i["kind"], i["id"]) for i in report["removed"]] == [("loopback", loop), ("sink", sink)]
    assert capture_modules(rig) == [f"sink_name=pixelpass_capture_{os.getpid()}"]
    assert rig.default_sink() == "speaker"

    report = pixelpass.repair()
    assert report["clean"] is True and report["removed"] == [] and len(report["skipped"]) == 1


@needs_rig
def test_asking_for_the_size_does_not_repair_twice(rig):
    """pp_repair acts, and its report follows the string convention: a call without room for the
    report repairs and keeps the report; the next call with room returns that same report."""
    pid, sink, loop = dead_pair(rig)
    c = ctypes.CDLL(os.environ["PIXELPASS_LIBRARY"])  # raw entry points, no errcheck
    c.pp_repair.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                            ctypes.POINTER(ctypes.c_size_t)]
    c.pp_repair.restype = ctypes.c_int

    class Options(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint), ("dry_run", ctypes.c_int)]

    opts = Options(1, 0)
    needed = ctypes.c_size_t(0)
    rc = c.pp_repair(ctypes.byref(opts), None, 0, ctypes.byref(needed))
    assert rc == pixelpass.Result.BUFFER_TOO_SMALL
    assert needed.value > 2
    assert capture_modules(rig) == [], "the first call did the repair"

    small = ctypes.create_string_buffer(needed.value - 1)  # still one byte short: still kept
    assert c.pp_repair(ctypes.byref(opts), small, len(small), ctypes.byref(needed)) == \
        pixelpass.Result.BUFFER_TOO_SMALL

    buf = ctypes.create_string_buffer(needed.value)
    assert c.pp_repair(ctypes.byref(opts), buf, len(buf), ctypes.byref(needed)) == pixelpass.Result.OK
    report = json.loads(buf.value.decode())
    assert [(i["kind"], i["id"], i["pid"]) for i in report["removed"]] == [
        ("loopback", loop, pid), ("sink", sink, pid)]

    # Taken: the next call repairs afresh and finds nothing.
    assert pixelpass.repair()["removed"] == []
