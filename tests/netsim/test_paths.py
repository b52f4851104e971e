"""Path upgrade and failover on real NATs: the direct path is cut mid-stream (nftables drop on the
viewer's link, the relay's traffic spared) → the stream carries on over the relay within 2 s; the
cut is lifted → the pair goes back to a direct path. Both the path a connection started on
(direct) and a punched one are cut. With PIXELPASS_NETSIM_FULL=1 (the netsim-matrix benchmark),
also relay throughput against direct in the same run."""
import json
import os
import time

import pytest

import netsim
from conftest import start_host, Peer

pytestmark = pytest.mark.skipif(netsim.available() is not None or not netsim.shutil.which("turnserver"),
                                reason=str(netsim.available() or "coturn is not installed"))

BENCH = os.environ.get("PIXELPASS_NETSIM_FULL") == "1"


def streaming_viewer(rig, ticket, **options):
    v = Peer(rig, "v", ["view", ticket, json.dumps(dict(no_stun=True, connect_timeout_ms=15000, **options)), "-1"])
    first = v.read(timeout=90)
    assert first["ok"], first
    return v, first


def wait_for(viewer, pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        st = viewer.ask()
        if pred(st):
            return st
        if time.monotonic() > deadline:
            return None
        time.sleep(step)


@pytest.mark.parametrize("host_nat,viewer_nat,direct_kind", [("none", "none", "direct"), ("port", "address", "punched")])
def test_cut_direct_path_fails_over_to_relay_and_back(host_nat, viewer_nat, direct_kind, peers):
    with netsim.Rig(host_nat=host_nat, viewer_nat=viewer_nat, coturn=True) as rig:
        # Paced at 8 Mbit/s so there is always data in flight when the cut comes.
        host, ready = start_host(rig, relay=rig.relay, relay_secret=rig.turn_secret,
                                 stun_servers=[rig.stun_server], bitrate_kbps=8000)
        peers.append(host)
        viewer, _ = streaming_viewer(rig, ready["ticket"])
        peers.append(viewer)
        st = wait_for(viewer, lambda s: s["stats"]["path"] == direct_kind and s["bytes"] > 500_000, 20)
        assert st, viewer.ask()["stats"]
        switches = st["stats"]["switches"]

        rig.cut("v")
        cut_at = time.monotonic()
        bytes_at_cut = viewer.ask()["bytes"]
        relayed = wait_for(viewer, lambda s: s["stats"]["path"] == "relayed", 10)
        assert relayed, "never fell back to the relay: %s" % viewer.ask()["stats"]
        switched_s = time.monotonic() - cut_at
        # The stream goes on over the relay: well past what was in flight at the cut.
        flowing = wait_for(viewer, lambda s: s["bytes"] > bytes_at_cut + 300_000, 10)
        assert flowing and not flowing["error"], "the stream did not continue over the relay"
        resumed_s = time.monotonic() - cut_at
        print(f"\nFAILOVER {host_nat}/{viewer_nat} from {direct_kind}: relay path after {switched_s:.2f} s, "
              f"stream +300 kB after {resumed_s:.2f} s")
        assert resumed_s < 2.5, f"the stream took {resumed_s:.2f} s to continue over the relay"
        assert relayed["stats"]["switches"] == switches + 1
        assert relayed["path_events"][-1]["path"] == "relayed"
        hs = host.ask()
        assert hs["stats"]["viewers"][0]["path"] == "relayed", hs["stats"]["viewers"]

        rig.cut("v", on=False)
        healed_at = time.monotonic()
        back = wait_for(viewer, lambda s: s["stats"]["path"] == direct_kind, 15)
        assert back, "did not upgrade back: %s" % viewer.ask()["stats"]
        print(f"UPGRADE back to {direct_kind} after {time.monotonic() - healed_at:.2f} s")
        before = back["bytes"]
        assert wait_for(viewer, lambda s: s["bytes"] > before + 300_000, 10), "stream stalled after the upgrade"
        assert back["stats"]["switches"] >= switches + 2
        # Never a reconnect: the one connection carried it all.
        assert not back["error"]
        assert len(host.ask()["stats"]["viewers"]) == 1


def test_relay_only_viewer_stays_relayed_beside_open_direct_paths(peers):
    with netsim.Rig(host_nat="port", viewer_nat="port", coturn=True) as rig:
        host, ready = start_host(rig, relay=rig.relay, relay_secret=rig.turn_secret,
                                 stun_servers=[rig.stun_server], bitrate_kbps=4000)
        peers.append(host)
        viewer, _ = streaming_viewer(rig, ready["ticket"], relay_only=True)
        peers.append(viewer)
        time.sleep(3)  # long enough for a punch, had one been tried
        st = viewer.ask()
        assert st["stats"]["path"] == "relayed" and st["stats"]["switches"] == 0, st["stats"]
        assert st["bytes"] > 0


def read_rate(rig, ticket, seconds=4, **options):
    v = Peer(rig, "v", ["view", ticket, json.dumps(dict(no_stun=True, **options)), "-1"])
    first = v.read(timeout=90)
    assert first["ok"], first
    time.sleep(1)
    a = v.ask()
    time.sleep(seconds)
    b = v.ask()
    v.quit()
    return (b["bytes"] - a["bytes"]) * 8 / (b["now"] - a["now"]) / 1e6, b["stats"]["path"]


@pytest.mark.benchmark  # meson test --benchmark netsim-matrix
def test_relay_throughput_against_direct(peers):
    with netsim.Rig(host_nat="none", viewer_nat="none", coturn=True) as rig:
        # Unpaced synthetic stream: as fast as each path carries it.
        host, ready = start_host(rig, relay=rig.relay, relay_secret=rig.turn_secret, no_stun=True)
        peers.append(host)
        direct, path_d = read_rate(rig, ready["ticket"])
        relayed, path_r = read_rate(rig, ready["ticket"], relay_only=True)
        print(f"\nTHROUGHPUT direct={direct:.0f} Mbit/s ({path_d}) relayed={relayed:.0f} Mbit/s ({path_r})")
        assert path_d == "direct" and path_r == "relayed"
        assert direct > 0 and relayed > 0
