"""The host's open port against a ticket holder or a local user who should get nothing
(docs/SECURITY.md lists which promise each test holds). Real hosts and viewers over loopback."""
import os
import queue
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import pixelpass
from pixelpass import ConnectionFailed, EventType, PixelpassError, Result


def rebuild(ticket, expiry):
    """The same fingerprint, secret and candidates with another expiry (0 = none): what anyone
    holding the ticket can make, since only a CRC protects its bytes."""
    copy = pixelpass.Ticket.new(ticket.fingerprint, ticket.secret)
    for candidate in ticket.candidates:
        copy.add_candidate(candidate.address, candidate.port, candidate.kind)
    copy.expiry = expiry
    return copy


class Events:
    """Collects a host's events from its loop thread."""

    def __init__(self):
        self.q = queue.Queue()
        self.seen = []

    def __call__(self, event):
        self.q.put(event)

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        for e in self.seen:
            if predicate(e):
                return e
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event in {timeout} s; saw {[e.message for e in self.seen]}")
            try:
                e = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(e)
            if predicate(e):
                return e


def test_expiry_is_bound_to_the_secret_and_ends_connected_viewers():
    events = Events()
    lifetime = 8
    with pixelpass.Host(events, source="synthetic", bind_address="127.0.0.1", max_viewers=4,
                        ticket_lifetime_s=lifetime) as host:
        host.start()
        good = pixelpass.Ticket.decode(host.ticket())
        assert good.expiry > 0
        # Rebuilt without its expiry, or with a later one: the host refuses both, though the
        # secret is right (on a host that only checked the secret both streamed).
        for expiry in (0, good.expiry + 3600):
            with pytest.raises(ConnectionFailed) as refused:
                pixelpass.Viewer.connect(rebuild(good, expiry))
            assert refused.value.code == Result.TICKET_REJECTED
        assert host.stats()["totals"]["refused_auth"] >= 2

        with pixelpass.Viewer.connect(good) as viewer:
            body = urllib.request.urlopen(viewer.url, timeout=30)
            assert len(body.read(1 << 16)) == 1 << 16
            # At the expiry the host ends the connection and the viewer says why.
            with pytest.raises(PixelpassError) as ended:
                viewer.wait(lifetime + 30)
            assert ended.value.code == Result.TICKET_EXPIRED
            body.close()
        left = events.wait_for(lambda e: e.type == EventType.VIEWER_LEFT, 30)
        assert left.json["reason"] == "ticket expired" and left.error == Result.TICKET_EXPIRED
        stats = host.stats()
        assert stats["expired"] is True and stats["totals"]["ended_expired"] == 1
        assert stats["viewers"] == []

        # After the expiry nothing the secret can build gets in.
        with pytest.raises(ConnectionFailed) as refused:
            pixelpass.Viewer.connect(rebuild(good, 0))
        assert refused.value.code == Result.TICKET_REJECTED
        assert host.stats()["totals"]["refused_expired"] >= 1


def test_a_ticket_without_expiry_still_works():
    """Hosts without a lifetime accept the secret itself: tickets made before expiry binding."""
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as host:
        host.start()
        good = pixelpass.Ticket.decode(host.ticket())
        assert good.expiry == 0
        with pixelpass.Viewer.connect(good) as viewer:
            with urllib.request.urlopen(viewer.url, timeout=30) as body:
                assert len(body.read(1 << 16)) == 1 << 16


def test_a_one_viewer_ticket_admits_its_first_viewer_only():
    events = Events()
    with pixelpass.Host(events, source="synthetic", bind_address="127.0.0.1", max_viewers=4,
                        one_viewer=True) as host:
        host.start()
        ticket = host.ticket()
        # The ticket says so: a viewer (and `pixelpass ticket inspect`) knows before dialling.
        assert pixelpass.Ticket.decode(ticket).one_viewer
        with pixelpass.Viewer.connect(ticket) as viewer:
            with urllib.request.urlopen(viewer.url, timeout=30) as body:
                assert len(body.read(1 << 16)) == 1 << 16
            # A second viewer with the same ticket (max_viewers would let it in) is refused.
            with pytest.raises(ConnectionFailed) as refused:
                pixelpass.Viewer.connect(ticket)
            assert refused.value.code == Result.TICKET_REJECTED
            assert "this ticket admits one viewer and one is already watching" in str(refused.value)
        events.wait_for(lambda e: e.type == EventType.VIEWER_LEFT, 30)
        # Spent: the first viewer left, and still nobody else gets in.
        with pytest.raises(ConnectionFailed) as refused:
            pixelpass.Viewer.connect(ticket)
        assert refused.value.code == Result.TICKET_REJECTED
        assert "this ticket admitted one viewer, who has left: ask the host for a new ticket" in str(refused.value)
        stats = host.stats()
        assert stats["totals"]["refused_one_viewer"] == 2
        assert stats["totals"]["viewers_joined"] == 1
        refusal = events.wait_for(lambda e: e.type == EventType.VIEWER_REFUSED, 10)
        assert refusal.json["reason"] == "one-viewer ticket used"


def test_without_one_viewer_a_ticket_admits_several():
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1", max_viewers=4) as host:
        host.start()
        ticket = host.ticket()
        assert not pixelpass.Ticket.decode(ticket).one_viewer
        with pixelpass.Viewer.connect(ticket), pixelpass.Viewer.connect(ticket):
            assert len(host.stats()["viewers"]) == 2
        assert host.stats()["totals"]["refused_one_viewer"] == 0


def test_max_streams_per_viewer_bounds_one_connection():
    """A viewer's players each open a stream over its one connection; the host admits
    max_streams_per_viewer of them at once (default 2) and refuses more with a reason."""
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1", max_streams_per_viewer=1) as host:
        host.start()
        with pixelpass.Viewer.connect(host.ticket()) as viewer:
            with urllib.request.urlopen(viewer.url, timeout=30) as first:
                assert len(first.read(1 << 16)) == 1 << 16
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(viewer.url, timeout=30)
                assert b"too many streams" in refused.value.read()
                assert len(first.read(1 << 16)) == 1 << 16  # the first one goes on
        assert host.stats()["totals"]["refused_streams"] == 1
    # The default admits two at once.
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as host:
        host.start()
        with pixelpass.Viewer.connect(host.ticket()) as viewer:
            with urllib.request.urlopen(viewer.url, timeout=30) as a, \
                    urllib.request.urlopen(viewer.url, timeout=30) as b:
                assert len(a.read(1 << 16)) == len(b.read(1 << 16)) == 1 << 16
        assert host.stats()["totals"]["refused_streams"] == 0


# ---- the local stream is for the viewer's own user --------------------------------------------

FETCH = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=20) as body:
        print("got", len(body.read(65536)))
except Exception as e:
    print("refused", type(e).__name__)
"""


def need(condition, what):
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing: {what}")
        pytest.skip(f"missing: {what}")


def test_another_local_user_cannot_fetch_the_stream():
    need(os.geteuid() == 0, "root (to run a fetch as user nobody with setpriv)")
    need(shutil.which("setpriv"), "setpriv (util-linux)")
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as host:
        host.start()
        with pixelpass.Viewer.connect(host.ticket()) as viewer:
            # User nobody knows the whole URL (as it could from a player's command line on a
            # viewer without this fix) and still gets no byte.
            r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                sys.executable, "-c", FETCH, viewer.url],
                               capture_output=True, text=True, timeout=60)
            assert r.stdout.startswith("refused"), (r.stdout, r.stderr)
            assert viewer.stats()["local"]["refused_other_user"] >= 1
            # The viewer's own user still does.
            r = subprocess.run([sys.executable, "-c", FETCH, viewer.url], capture_output=True, text=True, timeout=60)
            assert r.stdout.strip() == "got 65536", (r.stdout, r.stderr)


def test_the_player_gets_the_url_from_a_private_playlist_not_its_argv(tmp_path, monkeypatch):
    need(shutil.which("mpv"), "mpv")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as host:
        host.start()
        with pixelpass.Viewer.connect(host.ticket()) as viewer:
            token = viewer.url.rsplit("/", 1)[1]
            pid = pixelpass.launch_player(viewer.url, pixelpass.PlayerKind.MPV)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                assert not any(token.encode() in a for a in argv), argv
                playlist = [a.decode() for a in argv if a.startswith(b"--playlist=")][0].split("=", 1)[1]
                assert os.stat(playlist).st_mode & 0o777 == 0o600
                assert os.stat(os.path.dirname(playlist)).st_mode & 0o777 == 0o700
                # Real mpv opens the stream from it (headless here, but it reads before it fails).
                deadline = time.monotonic() + 60
                while viewer.stats()["local"]["bytes"] == 0:
                    assert time.monotonic() < deadline, viewer.stats()["local"]
                    time.sleep(0.1)
            finally:
                try:
                    os.kill(pid, 9)  # the mpv we started
                except ProcessLookupError:
                    pass


# ---- the config file may hold the relay secret ------------------------------------------------

@pytest.fixture
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return tmp_path / "pixelpass" / "config.toml"


def test_a_new_config_is_private(config_home):
    pixelpass.config_set("network.relay_secret", "s3cret-value-for-the-relay")
    assert config_home.stat().st_mode & 0o777 == 0o600
    # An existing file readable by others loses that on the next write.
    config_home.chmod(0o644)
    pixelpass.config_set("viewer.player", "mpv")
    assert config_home.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in config_home.parent.iterdir()] == ["config.toml"]  # no temp file left


def test_a_link_planted_at_the_temp_name_is_not_followed(config_home):
    # The old temp name was config.toml.tmp.<pid>, opened without O_EXCL: a link there made the
    # write land in (and truncate) whatever it pointed at.
    config_home.parent.mkdir(parents=True)
    victim = config_home.parent.parent / "victim.txt"
    victim.write_text("precious\n")
    (config_home.parent / f"config.toml.tmp.{os.getpid()}").symlink_to(victim)
    pixelpass.config_set("viewer.player", "mpv")
    assert victim.read_text() == "precious\n"
    assert not config_home.is_symlink() and "mpv" in config_home.read_text()


def test_a_symlinked_config_is_refused_with_a_clear_error(config_home):
    config_home.parent.mkdir(parents=True)
    real = config_home.parent.parent / "dotfiles-config.toml"
    real.write_text('[viewer]\nplayer = "vlc"\n')
    config_home.symlink_to(real)
    with pytest.raises(PixelpassError) as refused:
        pixelpass.config_set("viewer.player", "mpv")
    assert refused.value.code == Result.CONFIG and "symbolic link" in refused.value.detail
    assert config_home.is_symlink() and real.read_text() == '[viewer]\nplayer = "vlc"\n'
    assert pixelpass.config()["viewer"]["player"] == "vlc"  # reading through it is fine


def test_config_errors_never_echo_the_value(config_home):
    with pytest.raises(PixelpassError) as refused:
        pixelpass._c().pp_config_set(b"network.relay_secret", b"hunter2-raw-not-json")
    assert refused.value.code == Result.INVALID_ARGUMENT
    assert "hunter2" not in str(refused.value) and "network.relay_secret" in refused.value.detail
