"""The everyday CLI experience, end to end with the real binary: headless scripting, JSON lines,
doctor, the clipboard under Xvfb, --reconfigure against a local upload endpoint, and the
interactive menu driven through tmux. Every test has its own XDG_CONFIG_HOME; nothing leaves
loopback (the speed test goes to a server the test starts, STUN is not configured)."""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from upload_server import UploadServer  # noqa: E402

CLI = os.environ["PIXELPASS_CLI"]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    for k in ("PIXELPASS_SPEEDTEST_URL", "DISPLAY", "WAYLAND_DISPLAY"):
        e.pop(k, None)
    return e


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_script_captures_ticket_and_viewer_connects(tmp_path, env):
    pidfile = tmp_path / "host.pid"
    script = (f'T=$("{CLI}" host --source synthetic --bind 127.0.0.1 2>"{tmp_path}/host.err" & '
              f'echo $! >"{pidfile}"); printf "%s" "$T"')
    started = time.monotonic()
    ticket = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            timeout=60, check=True).stdout
    host_pid = int(pidfile.read_text())
    try:
        # The substitution returned while the host keeps running: stdout held only the ticket.
        assert time.monotonic() - started < 30
        assert ticket.startswith("pxp") and "\n" not in ticket
        os.kill(host_pid, 0)
        viewer = subprocess.Popen([CLI, ticket], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            r, _, _ = select.select([viewer.stdout], [], [], 30)
            assert r, "the viewer printed nothing"
            url = viewer.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(url, timeout=30) as stream:
                assert len(stream.read(4096)) > 0
        finally:
            stop(viewer)
        log = (tmp_path / "host.err").read_text()
        assert "viewer 1 joined" in log
        assert ticket not in log  # the secret-bearing ticket is not in the logs
    finally:
        os.kill(host_pid, signal.SIGINT)
        wait_for(lambda: not os.path.exists(f"/proc/{host_pid}") or
                 open(f"/proc/{host_pid}/stat").read().split()[2] == "Z", what="host exit")


class Lines:
    """Collects a pipe's lines on a thread, so tests wait on content rather than on reads."""
    def __init__(self, pipe):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for line in pipe:
            self.lines.append(line)

    def json_event(self, name, timeout=30):
        def find():
            for line in list(self.lines):
                j = json.loads(line)
                if j["event"] == name:
                    return j
            return None
        return wait_for(find, timeout, f"a {name} JSON line")


def test_json_lines(env):
    host = subprocess.Popen([CLI, "host", "--json", "--source", "synthetic", "--bind", "127.0.0.1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(host.stdout)
        ticket = out.json_event("ticket")["ticket"]
        assert ticket.startswith("pxp")
        assert out.json_event("ready")["details"]
        viewer = subprocess.Popen([CLI, "view", ticket], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            j = out.json_event("viewer_joined")
            assert j["viewer_id"] == 1 and j["details"]["path"] == "direct"
            status = out.json_event("status", timeout=30)
            assert status["stats"]["max_viewers"] == 2 and len(status["stats"]["viewers"]) == 1
        finally:
            stop(viewer)
        # Every line on stdout is JSON: nothing else is mixed in.
        for line in out.lines:
            json.loads(line)
    finally:
        stop(host)


def test_doctor_reports_vaapi_and_why(env):
    out = subprocess.run([CLI, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout)
    vaapi = next(c for c in report["checks"] if c["name"].startswith("encoder vaapi"))
    if not os.path.exists("/dev/dri"):
        assert vaapi["status"] == "warning"
        assert "no /dev/dri render node" in vaapi["detail"]
        assert "GPU" in vaapi["fix"]
    else:
        assert vaapi["status"] in ("ok", "warning") and vaapi["detail"]
    names = [c["name"] for c in report["checks"]]
    assert "H.264 encoder" in names and "clipboard" in names and "PipeWire" in names
    # No desktop session here: sharing cannot work, and the exit status says so.
    if not report["can_share"]:
        assert out.returncode == 1
    table = subprocess.run([CLI, "doctor"], env=env, capture_output=True, text=True, timeout=120).stdout
    assert "encoder vaapi (vaapih264enc)" in table and "fix:" in table


@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xclip")), reason="needs xvfb and xclip")
def test_ticket_lands_on_x11_clipboard(tmp_path, env):
    display = None
    for n in range(70, 90):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            display = n
            break
    assert display is not None
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-nolisten", "tcp", "-screen", "0", "640x480x24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(f"/tmp/.X11-unix/X{display}"), 30, "Xvfb")
        env["DISPLAY"] = f":{display}"
        host = subprocess.Popen([CLI, "host", "--copy", "--source", "synthetic", "--bind", "127.0.0.1"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ticket = host.stdout.readline().strip()
            assert ticket.startswith("pxp")
            def clipboard():
                r = subprocess.run(["xclip", "-selection", "clipboard", "-o"], env=env, capture_output=True,
                                   text=True, timeout=10)
                return r.stdout if r.returncode == 0 and r.stdout else None
            assert wait_for(clipboard, 30, "the clipboard") == ticket
        finally:
            stop(host)
        err = host.stderr.read()
        assert "copied to the clipboard with xclip" in err
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def test_reconfigure_against_local_endpoint(tmp_path, env):
    config = tmp_path / "config" / "pixelpass" / "config.toml"
    # Not at a terminal and no --yes: nothing is sent.
    r = subprocess.run([CLI, "--reconfigure"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--yes" in r.stderr and not config.exists()
    with UploadServer(mbit_per_s=24) as server:
        env["PIXELPASS_SPEEDTEST_URL"] = server.url
        r = subprocess.run([CLI, "--reconfigure", "--yes"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert server.requests == 1
    text = config.read_text()
    assert 'status = "measured"' in text and "upstream_mbps = " in text
    first = json.loads(subprocess.run([CLI, "--reconfigure", "--yes", "--json"], env=dict(
        env, PIXELPASS_SPEEDTEST_URL="http://127.0.0.1:1/__up"), capture_output=True, text=True,
        timeout=60).stdout.splitlines()[-1])
    assert first["event"] == "bandwidth" and first["status"] == "failed" and first["default_max_viewers"] == 2
    assert 'status = "failed"' in config.read_text()


# ---- the interactive menu through tmux ----------------------------------------------------------

# mpv script: after each newly presented picture, writes "<count> <width> <height> <codec>".
MPV_FRAME_COUNTER = """
local count, last = 0, nil
mp.register_event("tick", function()
  local pos = mp.get_property_number("time-pos")
  if pos == nil or pos == last then return end
  last = pos
  count = count + 1
  local f = io.open("@PATH@.tmp", "w")
  f:write(string.format("%d %s %s %s\\n", count, mp.get_property("video-params/w") or "0",
                        mp.get_property("video-params/h") or "0", mp.get_property("video-format") or "none"))
  f:close()
  os.rename("@PATH@.tmp", "@PATH@")
end)
"""


class Tmux:
    def __init__(self, socket_path, env):
        self.base = ["tmux", "-S", socket_path]
        self.env = env

    def run(self, *args):
        return subprocess.run(self.base + list(args), env=self.env, capture_output=True, text=True,
                              timeout=30, check=True).stdout

    def screen(self, pane):
        return self.run("capture-pane", "-p", "-J", "-t", pane)

    def wait_screen(self, pane, text, timeout=60):
        return wait_for(lambda: text in self.screen(pane) and self.screen(pane), timeout,
                        f"{text!r} in tmux pane {pane}")


@pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")
@pytest.mark.skipif(not shutil.which("mpv"), reason="needs mpv")
@pytest.mark.skipif(os.environ.get("PP_HAVE_MEDIA") == "0", reason="built without media (GStreamer)")
def test_menu_host_and_view_through_tmux(tmp_path, env):
    mpv_conf = tmp_path / "config" / "mpv"
    mpv_conf.mkdir(parents=True)
    mpv_log = tmp_path / "mpv.log"
    # Real mpv, headless: no video or audio output, a log to prove it opened the stream, and a
    # script that counts the pictures it decoded and presented (to the null output).
    frames_file = tmp_path / "mpv-frames"
    frames_lua = tmp_path / "frames.lua"
    frames_lua.write_text(MPV_FRAME_COUNTER.replace("@PATH@", str(frames_file)))
    (mpv_conf / "mpv.conf").write_text(f"vo=null\nao=null\nlog-file={mpv_log}\nscript={frames_lua}\n")
    env["TERM"] = "xterm-256color"
    tmux = Tmux(str(tmp_path / "tmux.sock"), env)
    shell_env = f"XDG_CONFIG_HOME={env['XDG_CONFIG_HOME']} "
    tmux.run("new-session", "-d", "-x", "220", "-y", "50", "-s", "pp",
             f"{shell_env}{CLI} --source test --encoder x264 --bind 127.0.0.1; sleep 600")
    mpv_pid = None
    try:
        tmux.wait_screen("pp:0", "Choose [1/2]")
        tmux.run("send-keys", "-t", "pp:0", "1", "Enter")
        # First run at a terminal: the bandwidth test is offered; declining is remembered.
        tmux.wait_screen("pp:0", "[y/N]")
        tmux.run("send-keys", "-t", "pp:0", "n", "Enter")
        screen = tmux.wait_screen("pp:0", "viewers 0/2")
        ticket = next(line.strip() for line in screen.splitlines() if line.strip().startswith("pxp"))
        config = (tmp_path / "config" / "pixelpass" / "config.toml").read_text()
        assert 'status = "skipped"' in config

        tmux.run("new-window", "-t", "pp", f"{shell_env}{CLI}; sleep 600")
        tmux.wait_screen("pp:1", "Choose [1/2]")
        tmux.run("send-keys", "-t", "pp:1", "2", "Enter")
        tmux.wait_screen("pp:1", "Paste the ticket")
        # Pasted with a line break in the middle, as chat clients wrap it.
        half = len(ticket) // 2
        tmux.run("send-keys", "-t", "pp:1", "-l", ticket[:half])
        tmux.run("send-keys", "-t", "pp:1", "Enter")
        tmux.run("send-keys", "-t", "pp:1", "-l", ticket[half:])
        tmux.run("send-keys", "-t", "pp:1", "Enter")
        screen = tmux.wait_screen("pp:1", "mpv started (pid ")
        mpv_pid = int(screen.split("mpv started (pid ")[1].split(")")[0])
        wait_for(lambda: mpv_log.exists() and "127.0.0.1" in mpv_log.read_text(errors="replace"), 60,
                 "mpv opening the local stream")
        # The real pipeline's H.264 reached mpv and was decoded: frames, their size and codec.
        def decoded():
            text = frames_file.read_text().strip() if frames_file.exists() else ""
            return text if text and int(text.split()[0]) >= 30 else None
        count, width, height, codec = wait_for(decoded, 90, "mpv decoding 30 frames").split(maxsplit=3)
        assert int(width) > 0 and int(height) > 0
        assert "h264" in codec.lower(), codec
        # The live status line: the viewer, its path and RTT, the rate, the encoder, drops.
        status = tmux.wait_screen("pp:0", "viewers 1/2")
        line = next(line for line in status.splitlines() if "viewers 1/2" in line)
        assert " direct " in line and " ms" in line and "Mbit/s" in line, line
        assert "x264enc" in line and "drops " in line, line
        print(f"mpv decoded {count} frames {width}x{height} {codec}; host status: {line.strip()}")
        assert ticket not in tmux.screen("pp:1").split("Paste the ticket")[0]

        tmux.run("send-keys", "-t", "pp:1", "C-c")
        tmux.wait_screen("pp:0", "viewers 0/2")
        tmux.run("send-keys", "-t", "pp:0", "C-c")
        tmux.wait_screen("pp:0", "host stopped")

        # Second run: no bandwidth question (skipping is sticky).
        tmux.run("new-window", "-t", "pp", f"{shell_env}{CLI} --source synthetic --bind 127.0.0.1; sleep 600")
        tmux.wait_screen("pp:2", "Choose [1/2]")
        tmux.run("send-keys", "-t", "pp:2", "1", "Enter")
        tmux.wait_screen("pp:2", "viewers 0/2")
        assert "[y/N]" not in tmux.screen("pp:2")
        tmux.run("send-keys", "-t", "pp:2", "C-c")
        tmux.wait_screen("pp:2", "host stopped")
    finally:
        if mpv_pid:
            try:
                os.kill(mpv_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        subprocess.run(tmux.base + ["kill-server"], env=env, capture_output=True, timeout=30)
