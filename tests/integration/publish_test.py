"""Publishing to real media servers beside the P2P viewers (issue 17).

nginx with its RTMP module and srt-live-transmit are started by the tests on loopback ephemeral
ports with their own configuration (never the system service). The host publishes the test
source; mpv decodes frames pulled from the server while a P2P viewer reads the same encode;
killing the server leaves the viewer's stream flowing and the host retrying; restarting it
resumes publishing.

Run by meson with PIXELPASS_LIBRARY and PYTHONPATH. With CI=true a missing component fails the
test naming it; elsewhere it skips. Every wait is a polled condition with a generous deadline.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

import pixelpass

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def need(condition, what):
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing")
    pytest.skip(f"{what} is missing")


def wait_until(predicate, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_options(**extra):
    opts = dict(source="test", bind_address="127.0.0.1", no_stun=True, no_port_mapping=True,
                no_relay=True, encoder="x264", max_viewers=4, bitrate_kbps=2000)
    opts.update(extra)
    return opts


def target(host):
    targets = host.stats().get("publish", [])
    assert len(targets) == 1, targets
    return targets[0]


def mpv_decodes(url, log, frames=30, timeout=120):
    """mpv pulls `url` and decodes `frames` video frames (exit 0), or the test fails."""
    need(shutil.which("mpv"), "mpv (Debian package mpv)")
    cmd = ["mpv", "--no-config", "--untimed", "--cache=no", "--vo=null", "--ao=null",
           "--msg-level=all=v", f"--log-file={log}", "--no-terminal", f"--frames={frames}", url]
    r = subprocess.run(cmd, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = log.read_text(errors="replace") if log.exists() else ""
    assert r.returncode == 0, f"mpv exited {r.returncode} on {url}: {text[-2000:]}"
    assert "h264" in text, f"mpv found no H.264 track in {url}"


class Flow(threading.Thread):
    """Reads a P2P viewer's local URL continuously, timestamping what arrives."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.arrivals = []  # (monotonic time, bytes)

    def run(self):
        with urllib.request.urlopen(self.url, timeout=30) as r:
            while not self.stop.is_set():
                chunk = r.read(16384)
                if not chunk:
                    return
                self.arrivals.append((time.monotonic(), len(chunk)))

    def bytes_since(self, t):
        return sum(n for at, n in self.arrivals if at >= t)

    def longest_gap_since(self, t):
        times = [t] + [at for at, _ in self.arrivals if at >= t] + [time.monotonic()]
        return max(b - a for a, b in zip(times, times[1:]))


class Server:
    """A media server process on a loopback port, killable and restartable."""

    def __init__(self, tmp_path, name):
        self.tmp_path, self.name, self.proc = tmp_path, name, None
        self.log = tmp_path / f"{name}.log"

    def command(self):
        raise NotImplementedError

    def ready(self):
        return True

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is None and self.ready(), 30, what=f"{self.name} to listen")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.kill()


class Nginx(Server):
    def __init__(self, tmp_path):
        super().__init__(tmp_path, "nginx")
        self.port = free_port()
        (tmp_path / "logs").mkdir(exist_ok=True)
        self.conf = tmp_path / "nginx.conf"
        self.conf.write_text(f"""
load_module {RTMP_MODULE};
daemon off;
master_process off;
worker_processes 1;
error_log {tmp_path}/nginx-error.log info;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        application live {{ live on; record off; }}
    }}
}}
""")

    def command(self):
        return ["nginx", "-p", str(self.tmp_path), "-c", str(self.conf)]

    def start(self):
        # Connection numbers restart with each nginx: each run gets its own log.
        log = self.tmp_path / "nginx-error.log"
        if log.exists():
            log.rename(self.tmp_path / f"nginx-error.{len(list(self.tmp_path.glob('nginx-error.*')))}.log")
        super().start()

    def ready(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def publisher_connected(self):
        """True while the newest publishing connection has not disconnected."""
        path = self.tmp_path / "nginx-error.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        conns = re.findall(r"(\*\d+) publish: name='test'", text)
        return bool(conns) and f"{conns[-1]} disconnect" not in text

    def publishes(self):
        """How many times a client started publishing (nginx logs each at info level)."""
        return sum(p.read_text(errors="replace").count("publish: name='test'")
                   for p in self.tmp_path.glob("nginx-error*.log"))


class SrtListener(Server):
    """srt-live-transmit listening for the host (caller) and forwarding the TS to UDP."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path, "srt-live-transmit")
        self.port = free_port(socket.SOCK_DGRAM)
        self.udp_port = free_port(socket.SOCK_DGRAM)

    def command(self):
        return ["srt-live-transmit", "-a:yes", "-v", f"srt://127.0.0.1:{self.port}?mode=listener",
                f"udp://127.0.0.1:{self.udp_port}"]

    def connections(self):
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count("Accepted SRT source connection")


def run_publish_scenario(tmp_path, server, url, server_url):
    """The shared scenario: live with no viewer, decoded from the server; a P2P viewer beside it;
    the server killed (viewer unaffected, host retrying); restarted (publishing resumes)."""
    server.start()
    try:
        with pixelpass.Host(**host_options(publish=[url])) as host:
            host.start()
            wait_until(lambda: target(host)["state"] == "live", 60, what="the target to go live")
            stats = host.stats()
            # Publishing alone runs the pipeline: no P2P viewer yet.
            assert stats["viewers"] == [] and stats["pipeline_state"] == "PLAYING", stats
            assert "test" not in target(host)["target"].split("/")[-1] or url.startswith("srt"), \
                "the stream key is shown"
            mpv_decodes(server_url, tmp_path / "server-1.log")

            with pixelpass.Viewer.connect(host.ticket(), no_stun=True, no_relay=True) as viewer:
                flow = Flow(viewer.url)
                flow.start()
                wait_until(lambda: flow.bytes_since(0) > 50_000, 60, what="the P2P stream to flow")
                mpv_decodes(server_url, tmp_path / "server-2.log")

                killed = time.monotonic()
                server.kill()
                wait_until(lambda: target(host)["state"] == "retrying", 60,
                           what="the host to notice the dead server")
                t = target(host)
                assert t["reason"], t
                # The viewer's stream went on while the target failed: 2 Mbit/s ≈ 250 kB/s.
                wait_until(lambda: time.monotonic() - killed > 3, 10)
                assert flow.bytes_since(killed) > 200_000, f"P2P flow stalled: {flow.bytes_since(killed)} B"
                assert flow.longest_gap_since(killed) < 2.5, f"P2P gap {flow.longest_gap_since(killed):.1f} s"
                assert host.stats()["pipeline_state"] == "PLAYING"

                server.start()
                wait_until(lambda: target(host)["state"] == "live", 90, what="publishing to resume")
                assert target(host)["connects"] >= 2
                mpv_decodes(server_url, tmp_path / "server-3.log")
                assert flow.is_alive() and flow.bytes_since(killed) > 0
                flow.stop.set()
            t = target(host)
            assert t["bytes"] > 0 and t["attempts"] >= 2, t
            if hasattr(server, "publisher_connected"):
                # Sharing stops → publishing stops (and with it the pipeline's last reader).
                assert server.publisher_connected()
                host.stop()
                wait_until(lambda: not server.publisher_connected(), 30, what="the publisher to disconnect")
    finally:
        server.stop()


def test_rtmp_nginx_publish_kill_and_resume(tmp_path):
    need(shutil.which("nginx"), "nginx (Debian package nginx)")
    need(os.path.exists(RTMP_MODULE), "the nginx RTMP module (Debian package libnginx-mod-rtmp)")
    nginx = Nginx(tmp_path)
    run_publish_scenario(tmp_path, nginx, f"rtmp://127.0.0.1:{nginx.port}/live/test",
                         f"rtmp://127.0.0.1:{nginx.port}/live/test")
    assert nginx.publishes() >= 2


def test_rtmp_key_from_publish_key_file_never_in_stats(tmp_path):
    need(shutil.which("nginx"), "nginx (Debian package nginx)")
    need(os.path.exists(RTMP_MODULE), "the nginx RTMP module (Debian package libnginx-mod-rtmp)")
    nginx = Nginx(tmp_path)
    nginx.start()
    try:
        with pixelpass.Host(**host_options(publish=[f"rtmp://127.0.0.1:{nginx.port}/live"],
                                           publish_key="test")) as host:
            host.start()
            wait_until(lambda: target(host)["state"] == "live", 60, what="the target to go live")
            assert "test" not in target(host)["target"], target(host)
            assert "/live/test" not in str(host.stats())
            mpv_decodes(f"rtmp://127.0.0.1:{nginx.port}/live/test", tmp_path / "key.log")
    finally:
        nginx.stop()


def test_srt_listener_publish_kill_and_resume(tmp_path):
    need(shutil.which("srt-live-transmit"), "srt-live-transmit (Debian package srt-tools)")
    srt = SrtListener(tmp_path)
    run_publish_scenario(tmp_path, srt, f"srt://127.0.0.1:{srt.port}?mode=caller",
                         f"udp://127.0.0.1:{srt.udp_port}")


def test_refused_server_retries_with_backoff_and_viewers_keep_watching(tmp_path):
    port = free_port()  # nothing listens here
    events = []
    with pixelpass.Host(callback=events.append,
                        **host_options(publish=[f"rtmp://127.0.0.1:{port}/live/x"])) as host:
        host.start()
        wait_until(lambda: target(host)["state"] == "retrying", 60, what="the refusal")
        assert target(host)["reason"] == "connection refused", target(host)
        wait_until(lambda: target(host)["attempts"] >= 3, 60, what="three attempts")
        delays = [e.json.get("publish", {}).get("retry_in_s") for e in events
                  if isinstance(e.json, dict) and "publish" in e.json
                  and e.json["publish"]["state"] == "retrying"]
        assert delays[:3] == [1, 2, 4], delays
        with pixelpass.Viewer.connect(host.ticket(), no_stun=True, no_relay=True) as viewer:
            flow = Flow(viewer.url)
            flow.start()
            wait_until(lambda: flow.bytes_since(0) > 100_000, 60, what="the P2P stream beside a dead target")
            flow.stop.set()


def test_unsupported_scheme_and_missing_key_are_one_line_errors():
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.Host(**host_options(publish=["http://127.0.0.1/live/x"]))
    assert "unsupported scheme 'http'" in str(e.value)
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.Host(**host_options(publish=["rtmp://127.0.0.1/live"]))
    assert "--publish-key-file" in str(e.value)


CLI = os.environ.get("PIXELPASS_CLI")


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_cli_key_from_stdin_json_events_and_demo(tmp_path):
    need(shutil.which("nginx"), "nginx (Debian package nginx)")
    need(os.path.exists(RTMP_MODULE), "the nginx RTMP module (Debian package libnginx-mod-rtmp)")
    nginx = Nginx(tmp_path)
    nginx.start()
    try:
        host = subprocess.Popen([CLI, "host", "--json", "--source", "test", "--bind", "127.0.0.1", "--no-stun",
                                 "--no-port-mapping", "--encoder", "x264",
                                 "--publish", f"rtmp://127.0.0.1:{nginx.port}/live",
                                 "--publish-key-file", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            host.stdin.write("test\n")
            host.stdin.close()
            states, seen = [], []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and "live" not in states:
                line = host.stdout.readline()
                if not line:
                    break
                seen.append(line)
                if '"publish"' in line:
                    j = json.loads(line)
                    states.append(j.get("details", {}).get("publish", {}).get("state"))
            assert "live" in states, "".join(seen)[-2000:]
            assert "/live/test" not in "".join(seen), "the key from stdin appears in the output"
            mpv_decodes(f"rtmp://127.0.0.1:{nginx.port}/live/test", tmp_path / "cli.log")
        finally:
            host.terminate()
            host.wait(30)
        assert "/live/test" not in host.stderr.read()

        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        r = subprocess.run([CLI, "demo", "--headless", "--json", "--seconds", "4", "--encoder", "x264",
                            "--publish", f"rtmp://127.0.0.1:{nginx.port}/live/demo"],
                           capture_output=True, text=True, timeout=180, env=env)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["host"]["publish"][0]["bytes"] > 0, report["host"].get("publish")
    finally:
        nginx.stop()


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_missing_rtmp2sink_names_its_package(tmp_path):
    import glob
    system = glob.glob("/usr/lib/*/gstreamer-1.0/libgstcoreelements.so")
    need(system, "GStreamer plugins")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for lib in glob.glob(os.path.join(os.path.dirname(system[0]), "*.so")):
        if not os.path.basename(lib).startswith("libgstrtmp2"):
            os.symlink(lib, plugins / os.path.basename(lib))
    env = dict(os.environ, GST_PLUGIN_SYSTEM_PATH_1_0=str(plugins), GST_PLUGIN_PATH_1_0="",
               GST_REGISTRY_1_0=str(tmp_path / "registry.bin"))
    r = subprocess.run([CLI, "host", "--source", "test", "--bind", "127.0.0.1", "--no-stun", "--encoder", "x264",
                        "--publish", "rtmp://127.0.0.1:1/live/x"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "rtmp2sink" in r.stderr and "gstreamer1.0-plugins-bad" in r.stderr, r.stderr
