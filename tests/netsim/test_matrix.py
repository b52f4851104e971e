"""Every host-NAT × viewer-NAT pair connects and streams (with a relay configured), and ends up on
the path it should. The default suite runs a representative subset; the full 25-pair matrix runs
with PIXELPASS_NETSIM_FULL=1 (`meson test -C build --benchmark netsim-matrix`).

A pair starts direct when the viewer's first packet reaches the host unsolicited (the host has a
public address or a full-cone NAT); every other pair starts on the relay. Then the two sides trade
candidates over the connection and punch (simultaneous authenticated probes): the pair moves to a
"punched" direct path, except symmetric↔symmetric and symmetric↔port-restricted, where no probe
can get through (a symmetric NAT's fresh port meets a filter that wants the exact port): those
pairs stay relayed."""
import os
import time

import pytest

import netsim
from conftest import start_host, Peer
import json

pytestmark = pytest.mark.skipif(netsim.available() is not None or not netsim.shutil.which("turnserver"),
                                reason=str(netsim.available() or "coturn is not installed"))

SUBSET = [("none", "none"), ("full", "symmetric"), ("port", "address"), ("address", "port"),
          ("symmetric", "full"), ("symmetric", "symmetric")]
FULL = [(h, v) for h in netsim.NAT_KINDS for v in netsim.NAT_KINDS]
PAIRS = FULL if os.environ.get("PIXELPASS_NETSIM_FULL") == "1" else SUBSET
UNPUNCHABLE = {("symmetric", "symmetric"), ("symmetric", "port"), ("port", "symmetric")}


def first_path(host_nat, viewer_nat):
    return "direct" if host_nat in ("none", "full") else "relayed"


def expected_path(host_nat, viewer_nat):
    if first_path(host_nat, viewer_nat) == "direct":
        return "direct"
    return "relayed" if (host_nat, viewer_nat) in UNPUNCHABLE else "punched"


def wait_path(viewer, want, timeout=15):
    """Polls the viewer until its path is `want` (or the time is up); returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        st = viewer.ask()
        if st["stats"]["path"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


@pytest.mark.parametrize("host_nat,viewer_nat", PAIRS)
def test_pair(host_nat, viewer_nat, peers):
    with netsim.Rig(host_nat=host_nat, viewer_nat=viewer_nat, coturn=True) as rig:
        host, ready = start_host(rig, relay=rig.relay, relay_secret=rig.turn_secret,
                                 stun_servers=[rig.stun_server], bitrate_kbps=8000)
        peers.append(host)
        started = time.monotonic()
        viewer = Peer(rig, "v", ["view", ready["ticket"], json.dumps(dict(no_stun=True, connect_timeout_ms=15000)),
                                 "-1"])
        peers.append(viewer)
        first = viewer.read(timeout=90)
        assert first["ok"], first
        ready_path = first["path_events"][0]["ready"]
        assert ready_path == first_path(host_nat, viewer_nat), (host_nat, viewer_nat, first)
        want = expected_path(host_nat, viewer_nat)
        st = wait_path(viewer, want, timeout=15)
        settled_s = time.monotonic() - started
        path = st["stats"]["path"]
        # Give the unpunchable pairs the same chance to (wrongly) upgrade before judging them.
        if want == "relayed":
            time.sleep(3)
            st = viewer.ask()
            path = st["stats"]["path"]
        print(f"\nMATRIX host={host_nat:9} viewer={viewer_nat:9} first={ready_path:7} "
              f"final={path:7} connect={first['connect_ms']:.0f}ms settled={settled_s:.1f}s "
              f"switches={st['stats']['switches']} probes={st['stats'].get('probes')}")
        assert path == want, (host_nat, viewer_nat, st["stats"])
        # The stream flows on the final path.
        before = st["bytes"]
        deadline = time.monotonic() + 10
        while viewer.ask()["bytes"] < before + 200_000:
            assert time.monotonic() < deadline, "the stream stalled on the final path"
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while True:  # the host decides on its own; it lands on the same kind of path
            hs = host.ask()
            if [v["path"] for v in hs["stats"]["viewers"]] == [path] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [v["path"] for v in hs["stats"]["viewers"]] == [path], hs["stats"]["viewers"]
        if path != ready_path:
            # The switch was announced on both sides (PP_EVENT_PATH_CHANGED) and counted.
            assert st["path_events"][-1].get("path") == path, st["path_events"]
            assert any(e["path"] == path for e in hs["path_events"]), hs["path_events"]
            assert st["stats"]["switches"] >= 1 and hs["stats"]["viewers"][0]["switches"] >= 1


# ---- no relay at all: the DHT rendezvous (two dhtnodes in the rig) is the only help -----------

# Two symmetric NATs cannot meet without a relay: each side's port toward the other is random.
# port<->symmetric and symmetric<->port meet by port guessing (nat/guess, "guessed").
DHT_UNREACHABLE = {("symmetric", "symmetric")}
GUESSED = {("port", "symmetric"), ("symmetric", "port")}


def dht_found(host_nat, viewer_nat):
    """How the DHT-only pair's path may be found: a host whose NAT lets a stranger's first packet in
    is reached directly, unless the rendezvous' punch won the race; a symmetric NAT facing a
    port-restricted one only by port guessing; any other host through the punch, or (a symmetric
    side facing a milder cone NAT, where both run) port guessing when it wins the race."""
    if (host_nat, viewer_nat) in GUESSED:
        return ("guessed",)
    if host_nat in ("none", "full"):
        return ("direct", "dht-punched", "guessed")
    if "symmetric" in (host_nat, viewer_nat):
        return ("dht-punched", "guessed")
    return ("dht-punched",)


@pytest.mark.benchmark  # meson test --benchmark netsim-matrix
@pytest.mark.parametrize("host_nat,viewer_nat", FULL)
def test_pair_dht_only(host_nat, viewer_nat, peers):
    # coturn serves only as the STUN server here: no side is given a relay.
    with netsim.Rig(host_nat=host_nat, viewer_nat=viewer_nat, coturn=True, dht=True) as rig:
        host, ready = start_host(rig, stun_servers=[rig.stun_server], dht_bootstrap=rig.dht_bootstrap,
                                 bitrate_kbps=4000)
        peers.append(host)
        options = dict(stun_servers=rig.stun_servers, dht_bootstrap=rig.dht_bootstrap, connect_timeout_ms=10000)
        viewer = Peer(rig, "v", ["view", ready["ticket"], json.dumps(options), "100000"])
        peers.append(viewer)
        r = viewer.read(timeout=90)
        if r["ok"]:
            st = r["stats"]
            print(f"\nMATRIX-DHT host={host_nat:9} viewer={viewer_nat:9} ok found={st['found']:11} "
                  f"path={st['path']} connect={r['connect_ms']:.0f}ms first_byte={r['first_byte_ms']:.0f}ms")
        else:
            print(f"\nMATRIX-DHT host={host_nat:9} viewer={viewer_nat:9} FAILED {r['error'][-200:]}")
        if (host_nat, viewer_nat) in DHT_UNREACHABLE:
            assert not r["ok"], r
            assert "symmetric" in r["error"] and "--relay" in r["error"], r["error"]
            return
        assert r["ok"], r
        assert r["stats"]["found"] in dht_found(host_nat, viewer_nat), r["stats"]
        assert r["stats"]["path"] == "direct" and "relay" not in r["stats"]
