"""Media end to end: the host's real GStreamer pipeline (test source), real QUIC on loopback, real
players (mpv headless, VLC as an unprivileged user), through the Python binding and the CLI.

Run by meson (tests/integration/meson.build) with PIXELPASS_LIBRARY, PYTHONPATH and PIXELPASS_CLI.
The machine may be loaded (2 cores, parallel builds): every wait is a wait-for-condition with a
generous deadline, and bounds on latency are loose enough for that while still failing on the
original tool's ~2 s of garbage.
"""
import glob
import json
import os
import pathlib
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import pytest

import pixelpass

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from hostkit import gst_env_without, host_options, wait_until  # noqa: E402

CLI = os.environ.get("PIXELPASS_CLI")
MPV = shutil.which("mpv")
VLC = shutil.which("cvlc") or shutil.which("vlc")


def connect(host):
    return pixelpass.Viewer.connect(host.ticket(), no_stun=True, no_relay=True)


def mpv_base(url, log):
    # The player module's low-latency flags, then headless output.
    return ["mpv", "--no-config", "--profile=low-latency", "--untimed", "--cache=no",
            "--force-seekable=no", "--msg-level=all=info", f"--log-file={log}", "--no-terminal",
            url]


# ---- pictures -------------------------------------------------------------------------------------

def read_png_gray(path):
    """Width, height and 8-bit luma rows of an RGB(A) PNG written by mpv with filter 0 (none)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    rows = []
    for y in range(height):
        line = raw[y * stride:(y + 1) * stride]
        assert line[0] == 0, f"PNG filter {line[0]} (mpv was asked for none)"
        px = line[1:]
        rows.append(bytes((px[i] * 77 + px[i + 1] * 150 + px[i + 2] * 29) >> 8
                          for i in range(0, len(px), channels * 8)))  # every 8th pixel
    return width, height, rows


def check_picture(path, size=(1280, 720)):
    width, height, rows = read_png_gray(path)
    assert (width, height) == size
    flat = b"".join(rows)
    mean = sum(flat) / len(flat)
    assert mean > 40, f"{path}: mean luma {mean:.0f}: black"
    # The SMPTE bars: the top third has several distinct bar levels across its width.
    top = rows[height // 8]
    levels = {v // 24 for v in top}
    assert len(levels) >= 4, f"{path}: only {len(levels)} luma levels across the bars"
    return flat


# ---- TS arrival clock (for on-time checks) ------------------------------------------------------

class TsClock:
    """Follows PAT → PMT → video PID of a TS byte stream and records each video PES's PTS with its
    arrival time (time.time())."""

    def __init__(self):
        self.carry = b""
        self.pmt_pid = None
        self.video_pid = None
        self.samples = []  # (arrival unix s, pts 90 kHz)

    def feed(self, data, now):
        self.carry += data
        n = len(self.carry) // 188 * 188
        for off in range(0, n, 188):
            p = self.carry[off:off + 188]
            if p[0] != 0x47:
                continue
            pid = ((p[1] & 0x1f) << 8) | p[2]
            pusi = bool(p[1] & 0x40)
            afc = (p[3] >> 4) & 3
            start = 4 + (1 + p[4] if afc & 2 else 0)
            if not afc & 1 or start >= 188:
                continue
            payload = p[start:]
            if pid == 0 and pusi:
                sec = payload[1 + payload[0]:]
                self.pmt_pid = ((sec[10] & 0x1f) << 8) | sec[11]
            elif pid == self.pmt_pid and pusi:
                sec = payload[1 + payload[0]:]
                length = ((sec[1] & 0x0f) << 8) | sec[2]
                info = ((sec[10] & 0x0f) << 8) | sec[11]
                i, end = 12 + info, 3 + length - 4
                while i + 5 <= end:
                    stype, epid = sec[i], ((sec[i + 1] & 0x1f) << 8) | sec[i + 2]
                    if stype == 0x1b:
                        self.video_pid = epid
                    i += 5 + (((sec[i + 3] & 0x0f) << 8) | sec[i + 4])
            elif pid == self.video_pid and pusi and payload[:3] == b"\x00\x00\x01" and payload[7] & 0x80:
                b = payload[9:14]
                pts = (((b[0] >> 1) & 7) << 30) | (b[1] << 22) | ((b[2] >> 1) << 15) | (b[3] << 7) | (b[4] >> 1)
                self.samples.append((now, pts))
        self.carry = self.carry[n:]

    def lateness(self, epoch_unix_ms):
        """Arrival minus capture time, in ms, per frame."""
        return [now * 1000 - (epoch_unix_ms + pts / 90) for now, pts in self.samples]


class HttpReader(threading.Thread):
    """A player stand-in: GETs the viewer's URL and reads it, as fast as it comes or at a trickle
    (`trickle` bytes every `interval` s, with a small receive buffer)."""

    def __init__(self, url, trickle=None, interval=0.2):
        super().__init__(daemon=True)
        m = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
        self.port, self.path = int(m.group(1)), m.group(2)
        self.trickle, self.interval = trickle, interval
        self.clock = TsClock()
        self.bytes = 0
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            s = socket.socket()
            if self.trickle:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", self.port))
            s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head[:40]
            body = head.split(b"\r\n\r\n", 1)[1]
            self.clock.feed(body, time.time())
            self.bytes += len(body)
            s.settimeout(0.5)
            while not self.stop.is_set():
                if self.trickle:
                    time.sleep(self.interval)
                try:
                    data = s.recv(self.trickle or 65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                self.bytes += len(data)
                if not self.trickle:
                    self.clock.feed(data, time.time())
            s.close()
        except Exception as e:  # reported by the test
            self.error = e


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- tests ----------------------------------------------------------------------------------------

@pytest.mark.skipif(not MPV, reason="mpv not installed")
def test_mpv_decodes_video_and_audio_from_the_viewer_url(tmp_path):
    with pixelpass.Host(**host_options()) as host:
        host.start()
        with connect(host) as viewer:
            url = viewer.url
            frames, wav, log = tmp_path / "frames", tmp_path / "audio.pcm", tmp_path / "mpv.log"
            frames.mkdir()
            cmd = mpv_base(url, log) + [
                "--vo=image", "--vo-image-format=png", "--vo-image-png-compression=1",
                "--vo-image-png-filter=0", f"--vo-image-outdir={frames}",
                "--ao=pcm", f"--ao-pcm-file={wav}", "--ao-pcm-waveheader=no", "--audio-format=s16",
                "--audio-channels=stereo", "--audio-samplerate=48000",
                # Every 10th of 100 frames is written out: a PNG per frame made mpv slower than real
                # time on a loaded 2-core machine, and the host rightly skipped it ahead (drops 1),
                # which this test must not take for a broken stream.
                "--vf=framestep=10", "--frames=10"]
            subprocess.run(cmd, timeout=120, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            stats = host.stats()
    pictures = sorted(glob.glob(str(frames / "*.png")))
    assert len(pictures) >= 9, f"mpv wrote {len(pictures)} of 10 pictures (every 10th frame)"
    text = log.read_text(errors="replace")
    assert re.search(r"Audio\s+--aid=1.*aac", text), "mpv found no AAC track"
    samples = wav.read_bytes()  # raw s16 stereo 48 kHz
    assert len(samples) > 48000 * 4 // 2, "under half a second of audio decoded"
    assert any(b != 0 for b in samples), "the decoded audio is silence"
    looks = [check_picture(p) for p in (pictures[0], pictures[4], pictures[-1])]
    assert looks[0] != looks[1] != looks[2], "the picture does not move"
    assert stats["encoder"] == "x264enc"
    assert stats["pipeline_state"] == "PLAYING"
    assert [v["drops"] for v in stats["viewers"]] == [0]


# One account per test run, named after the run: two runs at once (two checkouts, a soak beside CI)
# shared one fixed name, and the first to finish deleted the account under the other's VLC test.
TEST_USER_COMMENT = "pixelpass tests of run {pid} (removed after the run)"
OLD_TEST_USER_COMMENT = "pixelpass tests (removed after the run)"  # the shared pixelpass-test account


def remove_stale_test_users():
    """Accounts of earlier runs that were killed before their teardown (their process is gone)."""
    prefix, suffix = TEST_USER_COMMENT.split("{pid}")
    for entry in pwd.getpwall():
        gecos = entry.pw_gecos
        if gecos == OLD_TEST_USER_COMMENT:
            stale = True
        elif gecos.startswith(prefix) and gecos.endswith(suffix):
            pid = gecos[len(prefix):len(gecos) - len(suffix)]
            stale = pid.isdigit() and not os.path.exists(f"/proc/{pid}")
        else:
            stale = False
        if stale:
            subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], check=False)
            subprocess.run(["userdel", entry.pw_name], check=False)


@pytest.fixture(scope="module")
def unprivileged_user():
    """A system account for the VLC test only (VLC refuses to run as root), private to this run:
    created here and removed afterwards, with any left by a killed run."""
    remove_stale_test_users()
    name = f"pp-test-{os.getpid()}"
    subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin",
                    "-c", TEST_USER_COMMENT.format(pid=os.getpid()), name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", name], check=True)


@pytest.mark.skipif(not VLC, reason="VLC not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="creating and switching to a test user needs root")
def test_vlc_as_unprivileged_user_decodes_frames(unprivileged_user):
    # pytest's tmp_path sits under a root-only directory: the test user needs its own.
    with tempfile.TemporaryDirectory(prefix="pp-vlc-") as tmp:
        run_vlc_test(pathlib.Path(tmp), unprivileged_user)


def run_vlc_test(tmp_path, unprivileged_user):
    # The viewer's local server serves only its own user (docs/SECURITY.md), so the viewer runs as
    # the same unprivileged user as VLC: the CLI, reading the ticket from stdin. VLC gets the URL
    # from a playlist only that user can read, as player::launch() hands it over.
    assert CLI, "PIXELPASS_CLI must point at the built CLI"
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    os.chmod(tmp_path, 0o777)
    os.chmod(scenes, 0o777)
    user = pwd.getpwnam(unprivileged_user)
    with pixelpass.Host(**host_options()) as host:
        host.start()
        view = subprocess.Popen(["runuser", "-u", unprivileged_user, "--", CLI, "view", "-", "--player", "none",
                                 "--no-stun", "--no-relay"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            view.stdin.write(host.ticket() + "\n")
            view.stdin.close()
            url = view.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), view.stderr.read() if view.poll() is not None else url
            playlist = tmp_path / "play.m3u"
            playlist.write_text(f"#EXTM3U\n#EXTINF:-1,pixelpass\n{url}\n")
            os.chown(playlist, user.pw_uid, user.pw_gid)
            os.chmod(playlist, 0o600)
            cmd = ["runuser", "-u", unprivileged_user, "--", "env", f"HOME={tmp_path}",
                   VLC, "-I", "dummy", "--no-audio", "--vout=dummy", "--video-filter=scene",
                   f"--scene-path={scenes}", "--scene-format=png", "--scene-ratio=10",
                   "--scene-prefix=f", "--network-caching=100", "--run-time=6",
                   str(playlist), "vlc://quit"]
            proc = subprocess.run(cmd, timeout=90, capture_output=True, text=True)
        finally:
            view.terminate()
            view.wait(15)
    shots = glob.glob(str(scenes / "f*.png"))
    assert len(shots) >= 5, f"VLC wrote {len(shots)} scene frames; exit {proc.returncode}: {proc.stderr[-2000:]}"


@pytest.mark.skipif(not MPV, reason="mpv not installed")
def test_late_joiner_gets_a_clean_first_frame_quickly(tmp_path):
    with pixelpass.Host(**host_options()) as host:
        host.start()
        with connect(host) as first:
            early = HttpReader(first.url)
            early.start()
            wait_until(lambda: early.bytes > 0, 30, what="the first viewer's stream")
            time.sleep(5)  # the stream has run 5 s: the join point is mid-GOP
            with connect(host) as late:
                frames, log = tmp_path / "late", tmp_path / "late.log"
                frames.mkdir()
                cmd = mpv_base(late.url, log) + [
                    "--vo=image", "--vo-image-format=jpg", f"--vo-image-outdir={frames}",
                    "--ao=null", "--frames=30"]
                started = time.monotonic()
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_until(lambda: glob.glob(str(frames / "*.jpg")), 30, interval=0.02,
                           what="the late joiner's first picture")
                first_frame_s = time.monotonic() - started
                proc.wait(timeout=60)
            early.stop.set()
    text = log.read_text(errors="replace")
    errors = [line for line in text.splitlines()
              if re.search(r"ffmpeg/video.*(error|non-existing|no frame|decode_slice|concealing)", line, re.I)]
    assert not errors, "decoder complained:\n" + "\n".join(errors[:10])
    assert len(glob.glob(str(frames / "*.jpg"))) >= 25
    # mpv's own start-up is included; the original's ~2 s of garbage would not pass this.
    assert first_frame_s < 3.0, f"first picture {first_frame_s:.2f} s after starting mpv"


def test_slow_player_is_skipped_and_counted_while_another_viewer_stays_on_time():
    """A player that reads at a trickle is moved to the live edge by its own viewer (the player
    queue, viewer/live_queue: it never pauses the tunnel for an MPEG-TS body), so the host sees two
    viewers that keep up and skips neither, and the other viewer stays on time. The host's own skip
    for a viewer whose network path is too slow is tested in tests/netsim/test_lossy.py and
    unit-fanout."""
    with pixelpass.Host(**host_options(bitrate_kbps=4000)) as host:
        host.start()
        with connect(host) as slow_viewer, connect(host) as fast_viewer:
            slow = HttpReader(slow_viewer.url, trickle=2048, interval=0.2)  # ~10 kB/s
            fast = HttpReader(fast_viewer.url)
            slow.start()
            fast.start()
            wait_until(lambda: fast.bytes > 0 and slow.bytes > 0, 30, what="both streams")
            rss_start = rss_kb()

            def slow_player_skipped():
                local = slow_viewer.stats()["local"]
                return local if local["skips"] > 0 else None

            # The slow player falls 1 s behind within seconds at a trickle; the kernel's socket
            # buffers are read first, so allow for load.
            t_skip = time.monotonic()
            slow_local = wait_until(slow_player_skipped, 60, interval=0.5,
                                    what="the slow player's skips in its viewer's stats")
            t_skip = time.monotonic() - t_skip
            time.sleep(3)  # the fast viewer keeps reading beside the skipped one (not a wait for an event)
            stats = host.stats()
            slow_local = slow_viewer.stats()["local"]
            fast_local = fast_viewer.stats()["local"]
            rss_end = rss_kb()
            slow.stop.set()
            fast.stop.set()
    epoch = stats["stream"]["pts_epoch_unix_ms"]
    late = fast.clock.lateness(epoch)
    assert len(late) > 60, f"the fast viewer got only {len(late)} frames"
    steady = late[15:]  # after the encoder's warm-up
    worst = max(range(len(steady)), key=lambda i: steady[i])
    p95 = sorted(steady)[int(len(steady) * 0.95)]
    median = sorted(steady)[len(steady) // 2]
    # Held back by the slow one, the fast viewer would fall further behind frame after frame until
    # a 1 s skip drops it too. With the README's two tests at a time (this one beside netsim's
    # encoders) the encoder itself runs late, p95 583 ms with no skip was measured. A loaded 2-core
    # CI machine can still stall this whole process once for a second, so one late frame is
    # tolerated; a late stream is not.
    assert p95 < 900 and steady[worst] < 2500, (
        f"fast viewer fell behind: median {median:.0f} ms, 95th percentile {p95:.0f} ms, worst "
        f"{steady[worst]:.0f} ms at frame {worst + 15} of {len(late)}; slow player skipped after {t_skip:.1f} s")
    pts = [p for _, p in fast.clock.samples]
    gaps = [b - a for a, b in zip(pts, pts[1:])]
    # A skip to the newest keyframe would jump a GOP (1–2 s); load may cost a frame here and there.
    assert max(gaps) < 45000, f"the fast viewer skipped {max(gaps) / 90:.0f} ms of stream"
    assert fast_local["skips"] == 0, fast_local
    assert slow_local["skips"] >= 1 and slow_local["skipped_bytes"] > 0, slow_local
    # The slow player's backlog stays in its viewer, bounded; the host skips nobody.
    assert [v["drops"] for v in stats["viewers"]] == [0, 0], stats["viewers"]
    ring = stats["media"]["ring"]
    assert ring["bytes_held"] <= 32 * 1024 * 1024, ring  # fanout::Limits::max_ring_bytes
    assert rss_end - rss_start < 100 * 1024, f"host and viewers grew {rss_end - rss_start} kB"
    print(f"slow player: skipped after {t_skip:.1f} s ({slow_local['skips']} skips); fast viewer "
          f"worst {steady[worst]:.0f} ms; RSS +{rss_end - rss_start} kB")


def test_teardown_after_grace_and_restart_with_a_new_viewer():
    grace = 1.5
    with pixelpass.Host(**host_options(grace_ms=int(grace * 1000))) as host:
        host.start()
        assert host.stats()["pipeline_state"] == "NULL"
        # The encoder is known (and shown on the CLI's status line) before any viewer.
        assert host.stats()["encoder"] == "x264enc"
        with connect(host) as viewer:
            reader = HttpReader(viewer.url)
            reader.start()
            wait_until(lambda: reader.bytes > 100_000, 30, what="the stream")
            assert host.stats()["pipeline_state"] == "PLAYING"
            reader.stop.set()
            reader.join(5)
        left = time.monotonic()
        wait_until(lambda: host.stats()["media"]["running"] is False, grace + 20,
                   what="the pipeline to stop")
        stopped_after = time.monotonic() - left
        assert stopped_after >= grace * 0.8, f"stopped {stopped_after:.2f} s after the last viewer"
        assert host.stats()["pipeline_state"] == "NULL"
        with connect(host) as again:
            reader = HttpReader(again.url)
            reader.start()
            wait_until(lambda: reader.bytes > 100_000, 30, what="the restarted stream")
            stats = host.stats()
            reader.stop.set()
    assert stats["media"]["starts"] == 2
    assert stats["pipeline_state"] == "PLAYING"


def run_cli(*args, env=None, timeout=60):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_missing_encoder_names_the_package(tmp_path):
    # nvenc needs an NVIDIA GPU; whatever the reason, the line says what to do.
    r = run_cli("host", "--source", "test", "--encoder", "nvenc", "--bind", "127.0.0.1")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "nvh264enc" in r.stderr and "gstreamer1.0-plugins-bad" in r.stderr, r.stderr

    # x264 hidden from GStreamer (a plugin directory without it, a fresh registry): the host
    # fails at start and names gstreamer1.0-plugins-ugly.
    env = gst_env_without(tmp_path, "libgstx264")
    assert env, "GStreamer plugins not found"
    r = run_cli("host", "--source", "test", "--encoder", "x264", "--bind", "127.0.0.1", env=env)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "x264enc" in r.stderr and "gstreamer1.0-plugins-ugly" in r.stderr, r.stderr


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_cli_host_source_test_serves_a_view_with_player_none(tmp_path):
    host = subprocess.Popen([CLI, "host", "--source", "test", "--bind", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ticket = host.stdout.readline().strip()
        assert ticket.startswith("pxp"), host.stderr.read() if host.poll() is not None else ticket
        view = subprocess.Popen([CLI, "view", ticket, "--player", "none"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            url = view.stdout.readline().strip()
            command = view.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and url.endswith(".ts"), url
            assert command.startswith("mpv ") and url in command, command
            reader = HttpReader(url)
            reader.start()
            wait_until(lambda: len(reader.clock.samples) > 30, 60, what="30 video frames via the CLI")
            reader.stop.set()
        finally:
            view.terminate()
            view.wait(10)
    finally:
        host.terminate()
        host.wait(15)


@pytest.mark.skipif(not CLI, reason="PIXELPASS_CLI not set")
def test_cli_demo_headless_reports_what_it_decoded():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = run_cli("demo", "--seconds", "3", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    m = re.search(r"decoded (\d+) frames of 1280x720", out)
    assert m and int(m.group(1)) >= 45, out
    assert "with audio" in out and "kbit/s" in out and "latency" in out, out
    assert "headless because no display" in out, out


@pytest.mark.skipif(not CLI or not MPV or not shutil.which("Xvfb"), reason="needs the CLI, mpv and Xvfb")
def test_cli_demo_with_a_display_plays_in_mpv():
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            display = ":" + f.readline().strip()
        env = dict(os.environ, DISPLAY=display)
        env.pop("WAYLAND_DISPLAY", None)
        r = run_cli("demo", "--seconds", "4", "--json", env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["mode"] == "player" and report["player"] == "mpv"
        # mpv was still playing when the demo ended it (it did not fail to open the stream).
        assert report["closed_by_user"] is False, report
        viewers = report["host"]["viewers"]
        assert len(viewers) == 1 and viewers[0]["bytes_sent"] > 500_000, viewers
    finally:
        xvfb.terminate()
        xvfb.wait(10)
