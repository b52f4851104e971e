"""`pixelpass repair` against a real headless PipeWire + WirePlumber + pipewire-pulse (audio_rig.sh).

Orphans are made the way a crashed pixelpass (or the original tool) leaves them: null sinks named
pixelpass_capture_<pid> loaded through pipewire-pulse for a PID that is dead (a child that ran and
was reaped), a loopback from such a sink's monitor to the speakers, a PipeWire node that lingers
after its creator left, and a target WirePlumber remembered after a stream was moved into such a
sink. Live ones use this test's own PID. Run by meson with PIXELPASS_CLI set.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audiorig import AudioRig, ModuleEvents, dead_pid  # noqa: E402

CLI = os.environ.get("PIXELPASS_CLI")
LIVE = os.getpid()


def repair(rig, *args):
    """Runs the CLI in the rig's session: (exit code, stdout, stderr)."""
    assert CLI, "PIXELPASS_CLI must point at the built pixelpass (meson sets it)"
    out = rig.run(CLI, "repair", *args, check=False, timeout=60)
    return out.returncode, out.stdout, out.stderr


def repair_json(rig, *args):
    code, out, err = repair(rig, "--json", *args)
    assert out.strip(), f"no report (exit {code}): {err}"
    return code, json.loads(out)


def kinds(items):
    return [(i["kind"], i["name"]) for i in items]


@pytest.fixture
def rig():
    with AudioRig() as r:
        assert r.default_sink() == "speaker"
        yield r


def test_dead_pair_is_removed_loopback_first_and_the_report_counts_two(rig):
    dead = dead_pid()
    sink = rig.load_module("module-null-sink", f"sink_name=pixelpass_capture_{dead}")
    loop = rig.load_module("module-loopback", f"source=pixelpass_capture_{dead}.monitor", "sink=speaker")
    events = ModuleEvents(rig)
    try:
        code, out, err = repair(rig)
        order = events.removed_modules(2)
    finally:
        events.close()
    assert code == 0, out + err
    assert order == [loop, sink], "the loopback must go before the sink it reads from"
    assert "removed 2 orphaned objects" in out
    assert f"loopback module #{loop}" in out and f"pixelpass_capture_{dead}" in out
    assert not any("pixelpass_capture" in m["argument"] for m in rig.modules())
    assert rig.default_sink() == "speaker"


def test_live_pair_is_kept_and_the_message_names_the_live_count(rig):
    rig.load_module("module-null-sink", f"sink_name=pixelpass_capture_{LIVE}")
    rig.load_module("module-loopback", f"source=pixelpass_capture_{LIVE}.monitor", "sink=speaker")
    before = rig.modules()
    code, out, err = repair(rig)
    assert code == 0, out + err  # nothing is orphaned: live objects are not orphans
    assert "nothing to repair; kept 2 objects of 1 live process" in out
    assert f"owner {LIVE} is alive" in out
    assert rig.modules() == before


def test_nothing_to_do_exits_zero(rig):
    code, out, err = repair(rig)
    assert (code, out.strip()) == (0, "nothing to repair"), err
    code, report = repair_json(rig, "--dry-run")
    assert code == 0
    assert report["clean"] is True and report["removed"] == [] and report["skipped"] == []
    assert report["servers"]["wireplumber"] is True
    assert report["servers"]["pulse"].startswith("PulseAudio (on PipeWire")


def _full_scenario(rig):
    """Dead, live, decoy and lingering objects and remembered targets, all at once; returns their
    names and ids and the state before repair."""
    s = SimpleNamespace()
    s.dead, s.dead_node = dead_pid(), dead_pid()
    s.dead_sink = f"pixelpass_capture_{s.dead}"
    s.live_sink = f"pixelpass_capture_{LIVE}"
    s.lingering = f"pixelpass_capture_{s.dead_node}"

    s.sink = rig.load_module("module-null-sink", f"sink_name={s.dead_sink}")
    s.loop = rig.load_module("module-loopback", f"source={s.dead_sink}.monitor", "sink=speaker")
    s.live = rig.load_module("module-null-sink", f"sink_name={s.live_sink}")
    s.live_loop = rig.load_module("module-loopback", f"source={s.live_sink}.monitor", "sink=speaker")
    # Decoys: arguments that mention a dead capture sink inside quoted, multi-line values. A
    # line-based reader of `pactl list modules` sees "sink_name=pixelpass_capture_<dead>" on a
    # line of its own here.
    s.decoy_sink = rig.load_module("module-null-sink", "sink_name=decoy",
                                   f'sink_properties=device.description="decoy\nsink_name={s.dead_sink}\n"')
    s.decoy_loop = rig.load_module("module-loopback", "source=speaker.monitor", "sink=decoy",
                                   f'sink_input_properties=media.name="{s.dead_sink}"')
    rig.create_lingering_node(s.lingering)
    # WirePlumber remembers per-app moves: ToneApp was moved into the dead sink, LiveApp into the
    # live one.
    rig.remember_target("ToneApp", s.dead_sink)
    rig.remember_target("LiveApp", s.live_sink)
    assert rig.default_sink() == "speaker"

    s.modules_before = rig.modules()
    s.nodes_before = sorted(n for n in rig.node_names() if n)
    s.state_before = rig.state_text()
    assert f"ToneApp:target={s.dead_sink}" in s.state_before
    assert any("\n" in m["argument"] for m in s.modules_before if m["name"] == "module-null-sink")
    return s


def _check_dry_run(rig, s):
    """A dry run reports everything, changes nothing, and is not clean."""
    dead, dead_node, dead_sink, live_sink, lingering = s.dead, s.dead_node, s.dead_sink, s.live_sink, s.lingering
    code, report = repair_json(rig, "--dry-run")
    assert code == 1
    assert report["dry_run"] is True and report["clean"] is False and report["failed"] == []
    assert kinds(report["removed"]) == [
        ("loopback", "module-loopback"), ("sink", dead_sink), ("node", lingering),
        ("restore-target", "Output/Audio:application.name:ToneApp")]
    assert [i["id"] for i in report["removed"][:2]] == [s.loop, s.sink]
    assert report["removed"][0]["source"] == f"{dead_sink}.monitor"
    assert report["removed"][2]["linger"] is True
    assert report["removed"][3]["target"] == dead_sink
    assert all(i["pid"] in (dead, dead_node) for i in report["removed"])
    skipped = {(i["kind"], i["name"]) for i in report["skipped"]}
    assert skipped == {("sink", live_sink), ("loopback", "module-loopback"),
                       ("restore-target", "Output/Audio:application.name:LiveApp")}
    assert all(i["reason"] == f"owner {LIVE} is alive" for i in report["skipped"])
    assert {i["id"] for i in report["skipped"] if i["kind"] != "restore-target"} == {s.live, s.live_loop}
    ids = {i["id"] for i in report["removed"] + report["skipped"]}
    assert s.decoy_sink not in ids and s.decoy_loop not in ids

    code, out, _ = repair(rig, "--dry-run")
    assert code == 1
    assert "dry run: would remove 4 orphaned objects" in out
    assert "kept 3 objects of 1 live process" in out

    assert rig.modules() == s.modules_before
    assert sorted(n for n in rig.node_names() if n) == s.nodes_before
    assert rig.state_text() == s.state_before


def _check_repair(rig, s):
    """Repair removes the dead ones in order and keeps the rest, WirePlumber's memory included."""
    dead_sink, live_sink, lingering = s.dead_sink, s.live_sink, s.lingering
    events = ModuleEvents(rig)
    try:
        code, report = repair_json(rig)
        order = events.removed_modules(2)
    finally:
        events.close()
    assert code == 0, report
    assert report["clean"] is True and report["failed"] == []
    assert kinds(report["removed"]) == [
        ("loopback", "module-loopback"), ("sink", dead_sink), ("node", lingering),
        ("restore-target", "Output/Audio:application.name:ToneApp")]
    assert order == [s.loop, s.sink]
    assert report["default_sink"] == {"before": "speaker", "after": "speaker"}
    assert rig.default_sink() == "speaker"

    after = rig.modules()
    assert [m for m in s.modules_before if dead_sink not in m["argument"] or m["argument"].startswith("sink_name=decoy")
            or "sink=decoy" in m["argument"]] == after
    assert any(m["argument"] == f"sink_name={live_sink}" for m in after)
    assert lingering not in rig.node_names()
    assert live_sink in rig.node_names() and "decoy" in rig.node_names()

    state = rig.state_text()
    assert "ToneApp:target" not in state
    assert f"LiveApp:target={live_sink}" in state
    assert "ToneApp:volume" in state  # only the target line went
    # WirePlumber rewrites the file from memory whenever it saves: the target must not come back.
    rig.provoke_wireplumber_save()
    state = rig.state_text()
    assert "ToneApp:target" not in state and f"LiveApp:target={live_sink}" in state
    # The stand-in stream repair showed WirePlumber is gone, and left no state of its own.
    assert not any(n and n.startswith("pixelpass-repair-") for n in rig.node_names())


def test_full_scenario_dry_run_then_repair_then_clean(rig):
    s = _full_scenario(rig)
    _check_dry_run(rig, s)
    _check_repair(rig, s)

    # --- a second run: clean, exit 0, the live ones still reported ---
    code, out, err = repair(rig)
    assert code == 0, out + err
    assert "nothing to repair; kept 3 objects of 1 live process" in out
    code, report = repair_json(rig)
    assert code == 0 and report["clean"] is True and report["removed"] == []


def test_wireplumber_not_running_the_state_file_is_edited_atomically(rig):
    dead = dead_pid()
    rig.load_module("module-null-sink", f"sink_name=pixelpass_capture_{dead}")
    rig.remember_target("ToneApp", f"pixelpass_capture_{dead}")
    rig.stop_wireplumber()
    path = rig.state_file
    text = path.read_text()
    # Entries WirePlumber escaped (space as \s) and a group that is not restore-stream must come
    # through byte for byte.
    text += (f"Output/Audio:media.name:my\\sstream:target=pixelpass_capture_{dead}\n"
             "Output/Audio:application.name:Other:target=speaker\n"
             f"[elsewhere]\nOutput/Audio:application.name:X:target=pixelpass_capture_{dead}\n")
    path.write_text(text)
    os.chmod(path, 0o640)
    inode = path.stat().st_ino

    code, report = repair_json(rig)
    assert code == 0, report
    assert report["servers"]["wireplumber"] is False
    assert sorted(i["name"] for i in report["removed"] if i["kind"] == "restore-target") == [
        "Output/Audio:application.name:ToneApp", "Output/Audio:media.name:my stream"]
    expected = "".join(line for line in text.splitlines(keepends=True)
                       if not (line.startswith("Output/Audio:application.name:ToneApp:target=") or
                               line.startswith("Output/Audio:media.name:my\\sstream:target=")))
    assert path.read_text() == expected
    assert path.stat().st_ino != inode, "replaced by rename, not rewritten in place"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["restore-stream"], "no temporary left"


def test_no_audio_server_is_a_clear_error():
    with tempfile.TemporaryDirectory() as empty:
        env = {k: v for k, v in os.environ.items() if k not in ("PULSE_SERVER", "PIPEWIRE_REMOTE")}
        env["XDG_RUNTIME_DIR"] = empty
        env["XDG_STATE_HOME"] = empty
        out = subprocess.run([CLI, "repair"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert out.stdout == ""
    assert "no PipeWire/PulseAudio server reachable" in out.stderr
