"""Publishing to real media servers beside the P2P viewers (issue 17).

nginx with its RTMP module and srt-live-transmit are started by the tests on loopback ephemeral
ports with their own configuration (never the system service). The host publishes the test
source; mpv decodes frames pulled from the server while a P2P viewer reads the same encode;
killing the server leaves the viewer's stream flowing and the host retrying; restarting it
resumes publishing.

A slow server sits behind a tc tbf bottleneck in a network namespace the test creates: its
target drops to keyframes (counted) while the P2P viewer and the other target go on. For rtmps://
nginx's stream module terminates TLS (a throwaway self-signed certificate) in front of nginx-rtmp.

Run by meson with PIXELPASS_LIBRARY and PYTHONPATH. With CI=true a missing component fails the
test naming it; elsewhere it skips. Every wait is a polled condition with a generous deadline,
every process a test starts is killed in its teardown, and a test that overruns TEST_BUDGET_S
exits the run with every thread's stack on stderr (long before meson's own timeout, which would
kill pytest before it printed which test hung and why).
"""
import faulthandler
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import pixelpass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostkit  # noqa: E402
from hostkit import wait_until  # noqa: E402

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CLI = os.environ.get("PIXELPASS_CLI")
# No test here needs more than about 90 s on an idle machine; several times that under load.
# meson's timeout for the file (tests/integration/meson.build) is above the sum the suite needs.
TEST_BUDGET_S = int(os.environ.get("PP_PUBLISH_TEST_BUDGET_S", "300"))

# Every process a test starts, killed (with its process group) when the test ends; and what
# else a test set up outside its tmp_path (network namespaces), undone even when it overruns.
_processes = []
_cleanups = []


def spawn(cmd, **kwargs):
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    _processes.append(proc)
    return proc


def end_process(proc, grace=10):
    """SIGTERM, then SIGKILL after `grace` s, to the process and its group; always reaped."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
    proc.wait()


def run(cmd, timeout, **kwargs):
    """subprocess.run in a session of its own: on timeout the whole group is killed (a plain
    run() would kill the child, then wait for the pipes a grandchild may still hold)."""
    proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_process(proc, grace=2)
        raise AssertionError(f"{cmd[:2]} did not finish in {timeout} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def overrun(request):
    """A test past its budget: its name and every thread's stack on meson's stderr (pytest's
    capture suspended, else the dump would go to a capture file that dies with the process), the
    test's processes killed, its namespaces removed, and the run ends failed."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman:
        capman.suspend_global_capture(in_=False)
    sys.stderr.write(f"\n{request.node.nodeid}: still running after its {TEST_BUDGET_S} s budget; "
                     "every thread's stack follows, then the run ends\n")
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    # The Python stacks stop at a call into the library (a pp_host_free that never returned was
    # seen once in 30 runs): the native stacks of every thread say where it waits.
    if shutil.which("gdb"):
        try:
            r = subprocess.run(["gdb", "-p", str(os.getpid()), "-batch", "-nx", "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=120)
            sys.stderr.write(r.stdout[-60000:] + r.stderr[-2000:])
        except subprocess.TimeoutExpired:
            sys.stderr.write("gdb did not finish in 120 s\n")
        sys.stderr.flush()
    for proc in _processes:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for cleanup in _cleanups:
        cleanup()
    os._exit(1)


@pytest.fixture(autouse=True)
def budget_and_teardown(request):
    done = threading.Event()
    threading.Thread(target=lambda: done.wait(TEST_BUDGET_S) or overrun(request), daemon=True).start()
    try:
        yield
    finally:
        done.set()
        while _processes:
            end_process(_processes.pop())
        while _cleanups:
            _cleanups.pop()()


def need(condition, what):
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing")
    pytest.skip(f"{what} is missing")


def need_nginx_rtmp():
    need(shutil.which("nginx"), "nginx (Debian package nginx)")
    need(os.path.exists(RTMP_MODULE), "the nginx RTMP module (Debian package libnginx-mod-rtmp)")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_options(**extra):
    return hostkit.host_options(**{"bitrate_kbps": 2000, **extra})


def target(host):
    targets = host.stats().get("publish", [])
    assert len(targets) == 1, targets
    return targets[0]


def mpv_decodes(url, log, frames=30, timeout=120):
    """mpv pulls `url` and decodes `frames` video frames (exit 0), or the test fails."""
    need(shutil.which("mpv"), "mpv (Debian package mpv)")
    cmd = ["mpv", "--no-config", "--untimed", "--cache=no", "--vo=null", "--ao=null",
           "--msg-level=all=v", f"--log-file={log}", "--no-terminal", f"--frames={frames}", url]
    proc = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        end_process(proc, grace=2)
        raise AssertionError(f"mpv decoded no {frames} frames from {url} in {timeout} s: "
                             + (log.read_text(errors="replace")[-1500:] if log.exists() else "no log"))
    r = proc
    text = log.read_text(errors="replace") if log.exists() else ""
    assert r.returncode == 0, f"mpv exited {r.returncode} on {url}: {text[-2000:]}"
    assert "h264" in text, f"mpv found no H.264 track in {url}"


class Pipe(threading.Thread):
    """Reads a child's text pipe to its end: lines to wait for, all of it to search."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines, self.seen = stream, queue.Queue(), []
        self.start()

    def run(self):
        for line in self.stream:
            self.seen.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout):
        """The next line, or None at the end of the stream or after `timeout` s."""
        try:
            return self.lines.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None

    def text(self):
        return "".join(self.seen)


def wait_cli_publish_live(host, out, err, timeout=90):
    """Reads a `pixelpass host --json` child's events (`out`, `err`: its Pipes) until its publish
    target reports "live"; fails with the child's output if it does not within `timeout` s."""
    states = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "live" not in states:
        line = out.line(deadline - time.monotonic())
        if line is None:
            break
        if '"publish"' in line:
            states.append(json.loads(line).get("details", {}).get("publish", {}).get("state"))
    assert "live" in states, f"exit {host.poll()}: {out.text()[-1500:]} {err.text()[-1500:]}"


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
            self.proc = spawn(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: self.proc.poll() is None and self.ready(), 30, what=f"{self.name} to listen")
        except AssertionError:
            self.stop()
            raise AssertionError(f"{self.name} did not start: {self.log_text()[-1500:]}")

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self):
        """Dies at once, as a crashed server does (no goodbye to its clients)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.proc:
            end_process(self.proc, grace=5)


class Nginx(Server):
    """nginx with the RTMP module on `address` (inside network namespace `netns` if given)."""

    def __init__(self, tmp_path, address="127.0.0.1", netns=None, tls_cert=None):
        """With `tls_cert` (a (certificate, key) pair), nginx's stream module also terminates TLS
        on `tls_port` in front of the RTMP port: an rtmps:// ingest."""
        super().__init__(tmp_path, "nginx")
        self.address, self.netns = address, netns
        self.port = free_port()
        self.tls_port = free_port() if tls_cert else None
        tls = f"""
load_module {STREAM_MODULE};""" if tls_cert else ""
        tls_server = f"""
stream {{
    server {{
        listen {address}:{self.tls_port} ssl;
        ssl_certificate {tls_cert[0]};
        ssl_certificate_key {tls_cert[1]};
        proxy_pass {address}:{self.port};
    }}
}}""" if tls_cert else ""
        (tmp_path / "logs").mkdir(exist_ok=True)
        self.conf = tmp_path / "nginx.conf"
        self.conf.write_text(f"""
load_module {RTMP_MODULE};{tls}
daemon off;
master_process off;
worker_processes 1;
error_log {tmp_path}/nginx-error.log info;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen {address}:{self.port};
        application live {{ live on; record off; }}
    }}
}}{tls_server}
""")

    def command(self):
        netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        return netns + ["nginx", "-p", str(self.tmp_path), "-c", str(self.conf)]

    def url(self, stream="test"):
        return f"rtmp://{self.address}:{self.port}/live/{stream}"

    def start(self):
        # Connection numbers restart with each nginx: each run gets its own log.
        log = self.tmp_path / "nginx-error.log"
        if log.exists():
            log.rename(self.tmp_path / f"nginx-error.{len(list(self.tmp_path.glob('nginx-error.*')))}.log")
        super().start()

    def ready(self):
        try:
            for port in filter(None, (self.port, self.tls_port)):
                socket.create_connection((self.address, port), timeout=1).close()
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


class SlowLink:
    """A network namespace for a server, reached over a veth pair whose way in (towards the
    server) is a tc tbf bottleneck of `kbit`: a server on a slow link, as the host's TCP sees it
    (MTU 1500, a real queue), not a loopback socket with megabytes of buffer."""

    def __init__(self, kbit):
        tag = f"{os.getpid() % 100000}{random.randrange(1000):03d}"
        self.ns, self.outer, self.inner = f"pp-pub{tag}", f"ppo{tag}", f"ppi{tag}"
        _cleanups.append(self.close)
        net = random.randrange(256 * 64) * 4  # a random 10.231.x.y/30
        self.host_ip = f"10.231.{net // 256}.{net % 256 + 1}"
        self.server_ip = f"10.231.{net // 256}.{net % 256 + 2}"
        self._sh("ip", "netns", "add", self.ns)
        self._sh("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner, "netns", self.ns)
        self._sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.outer)
        self._sh("ip", "link", "set", self.outer, "up")
        self._sh("ip", "-n", self.ns, "addr", "add", f"{self.server_ip}/30", "dev", self.inner)
        self._sh("ip", "-n", self.ns, "link", "set", self.inner, "up")
        self._sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        self._sh("tc", "qdisc", "add", "dev", self.outer, "root", "tbf", "rate", f"{kbit}kbit",
                 "burst", "16kb", "latency", "100ms")

    @staticmethod
    def _sh(*args):
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{' '.join(args)}: {r.stderr.strip()}"

    def close(self):
        """Idempotent; also run by the test's teardown."""
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)


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
    need_nginx_rtmp()
    nginx = Nginx(tmp_path)
    run_publish_scenario(tmp_path, nginx, f"rtmp://127.0.0.1:{nginx.port}/live/test",
                         f"rtmp://127.0.0.1:{nginx.port}/live/test")
    assert nginx.publishes() >= 2


def need_netns():
    need(os.geteuid() == 0, "root (the slow link is a network namespace)")
    need(shutil.which("ip") and shutil.which("tc"), "ip and tc (Debian package iproute2)")


def test_slow_server_drops_to_keyframes_while_viewer_and_other_target_go_on(tmp_path):
    """A server behind a 1 Mbit/s link gets the 2 Mbit/s stream: its target's bounded queue drops
    to the next keyframe (counted) and stays live; the P2P viewer and the target on a fast server
    are unaffected (no drop, no reconnect) and both servers still give decodable video."""
    need_nginx_rtmp()
    need_netns()
    (tmp_path / "fast").mkdir()
    (tmp_path / "slow").mkdir()
    link = SlowLink(1000)
    fast = Nginx(tmp_path / "fast")
    slow = Nginx(tmp_path / "slow", address=link.server_ip, netns=link.ns)
    try:
        fast.start()
        slow.start()
        with pixelpass.Host(**host_options(publish=[fast.url(), slow.url()])) as host:
            host.start()

            def targets():
                fast_t, slow_t = host.stats()["publish"]
                assert f":{fast.port}/" in fast_t["target"] and f":{slow.port}/" in slow_t["target"]
                return fast_t, slow_t

            wait_until(lambda: all(t["state"] == "live" for t in targets()), 60, what="both targets to go live")
            with pixelpass.Viewer.connect(host.ticket(), no_stun=True, no_relay=True) as viewer:
                flow = Flow(viewer.url)
                flow.start()
                wait_until(lambda: flow.bytes_since(0) > 50_000, 60, what="the P2P stream to flow")
                since = time.monotonic()
                # About one keyframe interval (2 s) of excess per drop: a few take ~10-20 s.
                wait_until(lambda: targets()[1]["drops"] >= 3, 120, what="the slow target to drop")
                fast_t, slow_t = targets()
                assert slow_t["state"] == "live" and slow_t["connects"] == 1, slow_t
                assert fast_t["state"] == "live" and fast_t["connects"] == 1, fast_t
                # 0 on an idle machine and in every stress run so far; on a machine loaded far
                # past its cores the fast nginx (one process) or the publisher thread can be
                # starved too (the bench saw 4 drops on loopback targets at load 17, 6 Mbit/s),
                # so the claim tested is the isolation: the fast target drops far less.
                assert fast_t["drops"] * 3 <= slow_t["drops"], (fast_t, slow_t)
                assert slow_t["bytes"] < fast_t["bytes"], (slow_t, fast_t)
                seconds = time.monotonic() - since
                # 2 Mbit/s ≈ 250 kB/s to the viewer, without a gap, all along.
                assert flow.bytes_since(since) > 100_000 * seconds, f"P2P: {flow.bytes_since(since)} B in {seconds:.0f} s"
                assert flow.longest_gap_since(since) < 2.5, f"P2P gap {flow.longest_gap_since(since):.1f} s"
                # What reached each server decodes: the slow one's gaps start at keyframes.
                mpv_decodes(fast.url(), tmp_path / "fast.log")
                mpv_decodes(slow.url(), tmp_path / "slow.log")
                flow.stop.set()
            fast_t, slow_t = targets()
            assert fast_t["connects"] == 1 and fast_t["drops"] * 3 <= slow_t["drops"], (fast_t, slow_t)
    finally:
        fast.stop()
        slow.stop()
        link.close()


def self_signed_certificate(tmp_path):
    """A throwaway certificate for localhost / 127.0.0.1 and its key."""
    need(shutil.which("openssl"), "openssl (Debian package openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return cert, key


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_rtmps_verifies_the_certificate_and_a_trusted_one_goes_live(tmp_path):
    """rtmps:// to nginx's TLS termination in front of nginx-rtmp. A self-signed certificate is
    refused by default (the target retries, saying why); once it is in the system's trust store
    (here: a copy of the bundle with it appended, bind-mounted over the system's in a private
    mount namespace, so nothing outside this test sees it) the same host goes live over TLS."""
    need_nginx_rtmp()
    need(os.path.exists(STREAM_MODULE), "the nginx stream module (Debian package libnginx-mod-stream)")
    need(os.path.exists(SYSTEM_CA_BUNDLE), f"{SYSTEM_CA_BUNDLE} (Debian package ca-certificates)")
    need(os.geteuid() == 0 and shutil.which("unshare"), "root and unshare (util-linux) for a private mount namespace")
    cert, key = self_signed_certificate(tmp_path)
    nginx = Nginx(tmp_path, tls_cert=(cert, key))
    nginx.start()
    url = f"rtmps://localhost:{nginx.tls_port}/live/test"

    # Untrusted: refused with the reason, retried, and sharing goes on.
    with pixelpass.Host(**host_options(publish=[url])) as host:
        host.start()
        wait_until(lambda: target(host)["attempts"] >= 2 and target(host)["state"] == "retrying", 60,
                   what="the untrusted certificate to be refused twice")
        t = target(host)
        assert "certificate is not trusted" in t["reason"] and t["connects"] == 0, t
        assert host.stats()["pipeline_state"] == "PLAYING"
    assert nginx.publishes() == 0

    # Trusted through the system store: the CLI host in a mount namespace of its own.
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_bytes(open(SYSTEM_CA_BUNDLE, "rb").read() + b"\n" + cert.read_bytes())
    host = spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  f'mount --bind "$1" {SYSTEM_CA_BUNDLE} && shift && exec "$@"', "sh", str(bundle),
                  CLI, "host", "--json", "--source", "test", "--bind", "127.0.0.1", "--no-stun",
                  "--no-port-mapping", "--encoder", "x264", "--publish", url],
                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = Pipe(host.stdout), Pipe(host.stderr)
    wait_cli_publish_live(host, out, err)
    # What went in over TLS comes out of the plain RTMP side of the same server.
    mpv_decodes(nginx.url(), tmp_path / "rtmps.log")
    # Not == 1: rtmp2sink over GIO's TLS (GStreamer 1.22, glib-networking 2.74) sometimes stops
    # sending on a live connection (seen after 66 kB with TLS 1.3, after 5.6 MB with TLS 1.2);
    # the 10 s stall watchdog reconnects (docs/PUBLISHING.md, "rtmps:// stalls").
    assert nginx.publishes() >= 1
    end_process(host)
    nginx.stop()


def test_rtmp_key_from_publish_key_file_never_in_stats(tmp_path):
    need_nginx_rtmp()
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

        def delays():
            return [e.json["publish"].get("retry_in_s") for e in list(events)
                    if isinstance(e.json, dict) and "publish" in e.json and e.json["publish"]["state"] == "retrying"]

        # Waits for the events themselves: "attempts" counts an attempt when it starts, before
        # its "retrying" event (polling attempts >= 3 failed 1 run in 15 that way).
        wait_until(lambda: len(delays()) >= 3, 60, what="three refusals")
        assert delays()[:3] == [1, 2, 4], delays()
        with pixelpass.Viewer.connect(host.ticket(), no_stun=True, no_relay=True) as viewer:
            flow = Flow(viewer.url)
            flow.start()
            wait_until(lambda: flow.bytes_since(0) > 100_000, 60, what="the P2P stream beside a dead target")
            flow.stop.set()


def test_server_refusing_the_stream_is_never_live_and_backs_off(tmp_path):
    """nginx-rtmp refuses a second publisher of a stream name in use. That target must never show
    "live" (rtmp2sink takes flvmux's header buffers before the server answers) and its waits
    grow 1, 2, 4 s; the first publisher stays live."""
    need_nginx_rtmp()
    nginx = Nginx(tmp_path)
    nginx.start()
    try:
        with pixelpass.Host(**host_options(publish=[nginx.url()])) as first:
            first.start()
            wait_until(lambda: target(first)["state"] == "live", 60, what="the first publisher to go live")
            events = []
            with pixelpass.Host(callback=events.append, **host_options(publish=[nginx.url()])) as second:
                second.start()

                def states():
                    return [e.json["publish"] for e in list(events)
                            if isinstance(e.json, dict) and "publish" in e.json]

                wait_until(lambda: sum(s["state"] == "retrying" for s in states()) >= 3, 90,
                           what="three refusals")
                retries = [s for s in states() if s["state"] == "retrying"]
                assert [s["retry_in_s"] for s in retries[:3]] == [1, 2, 4], retries
                assert "refused the stream" in retries[0]["reason"] and "Already publishing" in retries[0]["reason"], retries[0]
                assert not any(s["state"] == "live" for s in states()), states()
                assert target(second)["connects"] == 0, target(second)
            t = target(first)
            assert t["state"] == "live" and t["connects"] == 1, t
    finally:
        nginx.stop()


def test_unsupported_scheme_and_missing_key_are_one_line_errors():
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.Host(**host_options(publish=["http://127.0.0.1/live/x"]))
    assert "unsupported scheme 'http'" in str(e.value)
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.Host(**host_options(publish=["rtmp://127.0.0.1/live"]))
    assert "--publish-key-file" in str(e.value)



@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_cli_key_from_stdin_json_events_and_demo(tmp_path):
    need_nginx_rtmp()
    nginx = Nginx(tmp_path)
    nginx.start()
    try:
        host = spawn([CLI, "host", "--json", "--source", "test", "--bind", "127.0.0.1", "--no-stun",
                      "--no-port-mapping", "--encoder", "x264",
                      "--publish", f"rtmp://127.0.0.1:{nginx.port}/live",
                      "--publish-key-file", "-"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Both pipes drained by threads: a blocking readline has no deadline, and a host whose
        # stderr pipe filled up would stop writing stdout too.
        out, err = Pipe(host.stdout), Pipe(host.stderr)
        try:
            host.stdin.write("test\n")
            host.stdin.close()
            wait_cli_publish_live(host, out, err)
            assert "/live/test" not in out.text(), "the key from stdin appears in the output"
            mpv_decodes(f"rtmp://127.0.0.1:{nginx.port}/live/test", tmp_path / "cli.log")
        finally:
            host.terminate()
            try:
                host.wait(60)
            finally:
                end_process(host)
        assert host.returncode == 0, err.text()[-2000:]
        err.join(10)
        assert "/live/test" not in err.text()

        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        r = run([CLI, "demo", "--headless", "--json", "--seconds", "4", "--encoder", "x264",
                 "--publish", f"rtmp://127.0.0.1:{nginx.port}/live/demo"], 180, env=env)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["host"]["publish"][0]["bytes"] > 0, report["host"].get("publish")
    finally:
        nginx.stop()


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_missing_rtmp2sink_names_its_package(tmp_path):
    env = hostkit.gst_env_without(tmp_path, "libgstrtmp2")
    need(env, "GStreamer plugins")
    r = run([CLI, "host", "--source", "test", "--bind", "127.0.0.1", "--no-stun", "--encoder", "x264",
             "--publish", "rtmp://127.0.0.1:1/live/x"], 120, env=env)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "rtmp2sink" in r.stderr and "gstreamer1.0-plugins-bad" in r.stderr, r.stderr
