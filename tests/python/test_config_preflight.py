"""Config, bandwidth pre-flight, clipboard and doctor through the Python binding. Every test has
its own XDG_CONFIG_HOME; the speed test only ever talks to a server the test starts on loopback."""
import json
import os
import socket

import pytest

import pixelpass
from upload_server import UploadServer


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("PIXELPASS_SPEEDTEST_URL", raising=False)
    return tmp_path / "pixelpass" / "config.toml"


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/__up"


def test_first_run_state_and_set(config_home):
    assert pixelpass.config_path() == str(config_home)
    c = pixelpass.config()
    assert c["exists"] is False and c["bandwidth"]["status"] == "unmeasured"
    assert c["default_max_viewers"] == 2
    pixelpass.config_set("viewer.player", "mpv")
    pixelpass.config_set("network.stun_servers", ["127.0.0.1:9"])
    c = pixelpass.config()
    assert c["exists"] and c["viewer"]["player"] == "mpv" and c["network"]["stun_servers"] == ["127.0.0.1:9"]
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.config_set("host.max_viewers", 0)
    assert e.value.code == pixelpass.Result.INVALID_ARGUMENT
    config_home.unlink()  # deleting the file is the way back to the first run
    assert pixelpass.config()["bandwidth"]["status"] == "unmeasured"


def test_broken_file_is_reported_and_left_alone(config_home):
    config_home.parent.mkdir(parents=True)
    broken = b"# mine\n[bandwidth]\nstatus = \"measured\nupstream_mbps = 3\n"
    config_home.write_bytes(broken)
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.config()
    assert e.value.code == pixelpass.Result.CONFIG
    assert f"{config_home}:3:" in e.value.detail
    for action in (pixelpass.bandwidth_skip, lambda: pixelpass.config_set("host.max_viewers", 2),
                   lambda: pixelpass.bandwidth_test(closed_port_url())):
        with pytest.raises(pixelpass.PixelpassError):
            action()
    assert config_home.read_bytes() == broken


def test_unknown_key_is_a_warning(config_home):
    config_home.parent.mkdir(parents=True)
    config_home.write_text("[host]\nmax_viewer = 4\n")
    c = pixelpass.config()
    assert len(c["warnings"]) == 1 and ":2:1: unknown key 'host.max_viewer'" in c["warnings"][0]


def test_measure_against_local_endpoint(config_home):
    config_home.parent.mkdir(parents=True)
    config_home.write_text("# my comment stays\n[host]\nbitrate_kbps = 1000 # low\n")
    seen = []
    with UploadServer(mbit_per_s=16) as server:
        mbps = pixelpass.bandwidth_test(server.url, progress=lambda f, m: seen.append((f, m)))
        assert server.requests == 1 and server.received > 1_000_000
    # 16 Mbit/s raw, stored × 0.8 = 12.8; a loaded machine reads slower, never much faster.
    assert 4 < mbps < 16, mbps
    c = pixelpass.config()
    assert c["bandwidth"]["status"] == "measured"
    assert c["bandwidth"]["upstream_mbps"] == pytest.approx(mbps, abs=0.01)
    assert c["bandwidth"]["measured_at"].endswith("Z")
    # 1000 kbit/s video + 128 audio per viewer.
    assert c["default_max_viewers"] == max(1, int(c["bandwidth"]["upstream_mbps"] / 1.128))
    assert seen and seen[-1][0] > 0.5 and all(0 <= f <= 1 for f, _ in seen)
    text = config_home.read_text()
    assert text.startswith("# my comment stays\n[host]\nbitrate_kbps = 1000 # low\n")


def test_endpoint_from_environment_and_unreachable_fails(config_home, monkeypatch):
    monkeypatch.setenv("PIXELPASS_SPEEDTEST_URL", closed_port_url())
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.bandwidth_test()
    assert e.value.code == pixelpass.Result.UNREACHABLE
    c = pixelpass.config()
    assert c["bandwidth"]["status"] == "failed" and c["default_max_viewers"] == 2
    # The host still runs, with the default cap.
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as host:
        host.start()
        assert host.stats()["max_viewers"] == 2


def test_host_cap_follows_config(config_home):
    pixelpass.config_set("host.max_viewers", 5)
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as host:
        host.start()
        assert host.stats()["max_viewers"] == 5
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1", max_viewers=3) as host:
        host.start()
        assert host.stats()["max_viewers"] == 3  # an explicit option beats the file


def test_clipboard_without_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(pixelpass.UnsupportedError) as e:
        pixelpass.clipboard_copy("x")
    assert "no graphical session" in e.value.detail


def test_doctor_probes_only_configured_stun(config_home):
    # A loopback port nothing answers on: reported as a warning, quickly, and nowhere else probed.
    dead = closed_port_url().split("//")[1].split("/")[0]
    pixelpass.config_set("network.stun_servers", [dead])
    report = pixelpass.doctor(probe_timeout_ms=300)
    stun = [c for c in report["checks"] if c["name"].startswith("NAT (STUN")]
    assert len(stun) == 1 and stun[0]["status"] == "warning" and dead in stun[0]["name"]
    assert "refused" in stun[0]["detail"] or "no answer" in stun[0]["detail"]


def _stun_responder():
    """A minimal RFC 5389 server on loopback: answers Binding requests with XOR-MAPPED-ADDRESS."""
    import struct
    import threading
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    seen = []
    stopped = threading.Event()

    def serve():
        while not stopped.is_set():
            try:
                data, peer = sock.recvfrom(1500)
            except socket.timeout:
                continue
            if len(data) < 20 or data[:2] != b"\x00\x01" or data[4:8] != b"\x21\x12\xa4\x42":
                continue
            seen.append(peer)
            port = peer[1] ^ 0x2112
            addr = struct.unpack("!I", socket.inet_aton(peer[0]))[0] ^ 0x2112A442
            attr = struct.pack("!HHBBHI", 0x0020, 8, 0, 1, port, addr)
            sock.sendto(struct.pack("!HH", 0x0101, len(attr)) + data[4:20] + attr, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, seen, lambda: (stopped.set(), thread.join(), sock.close())


def test_doctor_reaches_configured_stun_and_relay(config_home):
    sock, seen, close = _stun_responder()
    try:
        server = "127.0.0.1:%d" % sock.getsockname()[1]
        pixelpass.config_set("network.stun_servers", [server])
        pixelpass.config_set("network.relay", "turn:" + server)
        report = pixelpass.doctor(probe_timeout_ms=3000)
        stun = next(c for c in report["checks"] if c["name"] == f"NAT (STUN {server})")
        assert stun["status"] == "ok", stun
        # The mapped address doctor reports is the source of a request the responder saw.
        mapped_port = int(stun["detail"].rsplit(":", 1)[1])
        assert "sees this host as 127.0.0.1:" in stun["detail"] and mapped_port in {p for _, p in seen}
        relay = next(c for c in report["checks"] if c["name"].startswith("relay turn:"))
        assert relay["status"] == "ok" and "127.0.0.1:" in relay["detail"]
    finally:
        close()


def test_network_relay_secret_and_port_mapping_keys(config_home):
    pixelpass.config_set("network.relay_secret", "s3cret-value-for-the-relay")
    pixelpass.config_set("network.port_mapping", "off")
    c = pixelpass.config()
    # The secret itself never appears in the JSON (it goes to logs and bug reports).
    assert c["network"]["relay_secret_set"] is True and "s3cret" not in json.dumps(c)
    assert c["network"]["port_mapping"] == "off"
    with pytest.raises(pixelpass.PixelpassError) as e:
        pixelpass.config_set("network.port_mapping", "maybe")
    assert "on" in str(e.value) and "off" in str(e.value)
    report = pixelpass.doctor(probe_timeout_ms=300)
    pm = next(c for c in report["checks"] if c["name"].startswith("port mapping"))
    assert pm["status"] == "skipped" and 'port_mapping = "off"' in pm["detail"], pm


def test_doctor_asks_no_gateway_in_tests(config_home):
    # The suite sets PIXELPASS_PORTMAP=off: doctor must not probe the machine's real router.
    assert os.environ.get("PIXELPASS_PORTMAP") == "off"
    report = pixelpass.doctor(probe_timeout_ms=300)
    pm = next(c for c in report["checks"] if c["name"].startswith("port mapping"))
    assert pm["status"] == "skipped" and "PIXELPASS_PORTMAP=off" in pm["detail"], pm
