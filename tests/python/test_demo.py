"""pixelpass.demo(): the main job through the binding — the test source hosted and viewed over
QUIC on loopback in the library's process, decoded headlessly, and its report returned."""
import errno
import shutil
import socket
import subprocess
import time

import pytest

import pixelpass


def test_headless_demo_reports_decoded_frames():
    events = []
    try:
        report = pixelpass.demo(events.append, headless=True, seconds=1.5, encoder="x264")
    except pixelpass.UnsupportedError as e:  # a build without GStreamer must say so
        assert "media" in e.detail
        pytest.skip("built without media support")
    assert report["mode"] == "headless"
    assert report["ok"] is True
    assert (report["width"], report["height"]) == (1280, 720)
    assert report["frames_decoded"] >= 20
    assert report["audio_samples"] > 0
    assert report["encoder"] == "x264enc"
    assert report["latency_ms"]["median"] < 1000
    assert any(e.type == pixelpass.EventType.READY for e in events)


def test_demo_rejects_unknown_options_and_encoders():
    with pytest.raises(TypeError):
        pixelpass.demo(colour="blue")
    with pytest.raises(pixelpass.PixelpassError) as err:
        pixelpass.demo(headless=True, seconds=1, encoder="h265")
    assert err.value.code == pixelpass.Result.INVALID_ARGUMENT


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
        return False


@pytest.fixture
def dhtnode():
    """A private DHT of one Debian `dhtnode` on loopback, on a free port: "127.0.0.1:PORT"."""
    if not shutil.which("dhtnode"):
        pytest.skip("needs dhtnode (Debian package dhtnode)")
    port = _free_udp_port()
    proc = subprocess.Popen(["dhtnode", "-s", "-p", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not _udp_port_taken(port):
            assert proc.poll() is None, f"dhtnode -p {port} exited at start ({proc.returncode})"
            assert time.monotonic() < deadline, f"dhtnode did not listen on {port} within 20 s"
            time.sleep(0.1)  # polling, with the deadline above
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_demo_rendezvous_over_a_real_dht(dhtnode):
    """With explicit DHT nodes the demo's viewer leaves its sealed offer on a real dhtnode and the
    loopback host receives and opens it; no_dht turns that off with the same nodes."""
    events = []
    try:
        report = pixelpass.demo(events.append, headless=True, seconds=1.5, dht_bootstrap=[dhtnode])
    except pixelpass.UnsupportedError as e:
        assert "media" in e.detail
        pytest.skip("built without media support")
    assert report["ok"] is True
    r = report["rendezvous"]
    assert r["bootstrap"] == [dhtnode]
    assert r["viewer_puts"] >= 1 and r["viewer_puts_failed"] == 0
    assert r["offers_received"] >= 1 and r["offers_ignored"] == 0
    assert r["found"] == report["viewer"]["found"]
    assert any(e.message.startswith("rendezvous: a viewer") for e in events)  # the host opened it

    report = pixelpass.demo(headless=True, seconds=1, dht_bootstrap=[dhtnode], no_dht=True)
    assert "rendezvous" not in report and "rendezvous" not in report["host"]


def test_demo_refuses_a_malformed_dht_node():
    with pytest.raises(pixelpass.PixelpassError) as err:
        pixelpass.demo(headless=True, seconds=1, dht_bootstrap=["127.0.0.1:notaport"])
    if err.value.code == pixelpass.Result.UNSUPPORTED:
        pytest.skip("built without media support")
    assert err.value.code == pixelpass.Result.INVALID_ARGUMENT
    assert "127.0.0.1:notaport" in str(err.value) and "\n" not in str(err.value)
