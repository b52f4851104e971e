"""The tunnel from Python: a Host serving the deterministic test byte source, a Viewer connected
over real QUIC on loopback, the stream pulled from its local URL, and both sides' statistics."""
import threading
import time
import urllib.request

import pytest

import pixelpass
from pixelpass import ConnectionFailed, Result


def pull(url, nbytes):
    got = 0
    with urllib.request.urlopen(url, timeout=30) as body:
        while got < nbytes:
            chunk = body.read(min(1 << 16, nbytes - got))
            if not chunk:
                break
            got += len(chunk)
    return got


@pytest.fixture
def host():
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1", max_viewers=1) as h:
        h.start()
        yield h


def test_viewer_pulls_the_stream_and_both_sides_report_it(host):
    with pixelpass.Viewer.connect(host.ticket()) as viewer:
        assert viewer.url.startswith("http://127.0.0.1:") and viewer.url.endswith(".ts")
        assert pull(viewer.url, 8 << 20) == 8 << 20
        stats = viewer.stats()
        assert stats["connected"] is True
        assert stats["path"] == "direct"
        assert stats["switches"] == 0  # no relay: no standby path, nothing to switch to
        assert stats["address"].startswith("127.0.0.1:")
        assert 0 < stats["rtt_ms"] < 5000
        assert stats["bytes_received"] >= 8 << 20
        assert stats["host"]["max_viewers"] == 1
        host_stats = host.stats()
        assert len(host_stats["viewers"]) == 1
        assert host_stats["viewers"][0]["path"] == "direct" and host_stats["viewers"][0]["switches"] == 0
        secret = pixelpass.Ticket.decode(host.ticket()).secret.hex()
        assert secret not in repr(host_stats).lower() and len(host_stats["secret_hash"]) == 8
        assert not viewer.wait(0.05)  # still connected


def test_the_viewer_cap_is_a_host_full_error(host):
    with pixelpass.Viewer.connect(host.ticket()) as first:
        body = urllib.request.urlopen(first.url, timeout=30)
        assert body.read(1 << 16)
        with pytest.raises(ConnectionFailed) as refused:
            pixelpass.Viewer.connect(host.ticket())
        assert refused.value.code == Result.HOST_FULL
        assert "1/1" in refused.value.detail
        body.close()


def test_a_ticket_with_another_secret_gets_nothing(host):
    # Same key and address, another secret: the host must refuse it.
    good = pixelpass.Ticket.decode(host.ticket())
    wrong_secret = bytes(b ^ 0xFF for b in good.secret)
    with pytest.raises(ConnectionFailed) as refused:
        pixelpass.Viewer.connect(rebuild(good, secret=wrong_secret))
    assert refused.value.code == Result.TICKET_REJECTED


def test_the_host_stopping_ends_the_viewer_cleanly(host):
    viewer = pixelpass.Viewer.connect(host.ticket())
    try:
        host.stop()
        assert viewer.wait(10) is True
    finally:
        viewer.close()


def rebuild(ticket, secret):
    """A copy of `ticket` with another access secret."""
    copy = pixelpass.Ticket.new(ticket.fingerprint, secret)
    for candidate in ticket.candidates:
        copy.add_candidate(candidate.address, candidate.port, candidate.kind)
    return copy


@pytest.mark.parametrize("cc", ["cubic", "bbr", "bbr2", "reno"])
def test_congestion_control_is_chosen_and_reported(cc):
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1", congestion_control=cc) as h:
        h.start()
        assert h.stats()["congestion_control"] == cc
        with pixelpass.Viewer.connect(h.ticket()) as viewer:
            assert pull(viewer.url, 4 << 20) == 4 << 20
            v = h.stats()["viewers"][0]
            # The per-viewer path figures (ngtcp2's view of the connection) and the skip count.
            for key in ("rtt_ms", "min_rtt_ms", "cwnd", "bytes_in_flight", "delivery_rate_kbps",
                        "congestion_events", "backlog_ms", "held_bytes", "lost_packets", "loss_pct", "skips"):
                assert key in v, (key, v)
            assert v["cwnd"] > 0 and v["delivery_rate_kbps"] > 0


def test_an_unknown_congestion_control_is_one_clear_error():
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1", congestion_control="vegas") as h:
        with pytest.raises(pixelpass.PixelpassError) as e:
            h.start()
        assert e.value.code == Result.INVALID_ARGUMENT
        assert "vegas" in str(e.value) and "bbr" in str(e.value)


def test_the_default_congestion_control_is_reported():
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as h:
        h.start()
        assert h.stats()["congestion_control"] in ("cubic", "bbr", "bbr2", "reno")
        assert "rate_control" not in h.stats()  # the synthetic source has no encoder to adapt


def test_the_viewer_reports_the_hosts_verdict_on_its_path():
    """While a stream runs the viewer asks the host how its path fares (GET /link) and its stats
    say so (and count the player queue's skips: none for a player that keeps up): on loopback with an adapting media host, measured and not too poor. The too-poor side
    is tests/netsim/test_lossy.py (a 300 kbit/s bottleneck)."""
    try:
        h = pixelpass.Host(source="test", encoder="x264", audio=False, bitrate_kbps=2000, bind_address="127.0.0.1",
                           no_stun=True, no_port_mapping=True, no_relay=True)
        h.start()
    except pixelpass.UnsupportedError as e:  # a build without GStreamer must say so
        assert "media" in e.detail
        pytest.skip("built without media support")
    with h, pixelpass.Viewer.connect(h.ticket(), no_stun=True, no_relay=True, no_dht=True) as viewer:
        before = viewer.stats()
        assert before["path_too_poor"] is False and before["link"]["reports"] == 0, before
        stop = threading.Event()

        def play():  # a player reading the stream, until the test has its answer
            with urllib.request.urlopen(viewer.url, timeout=30) as body:
                while not stop.is_set() and body.read(1 << 16):
                    pass

        player = threading.Thread(target=play, daemon=True)
        player.start()
        try:
            deadline = time.monotonic() + 60  # the pipeline starts, the host measures, the viewer asks every 2 s
            while not viewer.stats()["link"].get("measured"):
                assert time.monotonic() < deadline, viewer.stats()
                time.sleep(0.2)
            stats = viewer.stats()
        finally:
            stop.set()
            player.join(30)
        link = stats["link"]
        assert stats["path_too_poor"] is False and link["too_poor"] is False and link["reason"] == "none", link
        assert link["adaptive"] is True and link["floor_kbps"] == 500 and link["max_kbps"] == 2000, link
        assert 500 <= link["bitrate_kbps"] <= 2000 and link["reports"] >= 1 and link["supported"] is True, link
        # The player queue (viewer/live_queue): a player that keeps up is never skipped to a newer
        # keyframe; tests/netsim/test_lossy.py pauses one and sees the skips.
        local = stats["local"]
        assert local["skips"] == 0 and local["skipped_bytes"] == 0, local
        assert local["players"][0]["skips"] == 0 and local["players"][0]["lag_ms"] >= 0, local
