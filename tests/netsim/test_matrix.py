"""Every host-NAT × viewer-NAT pair connects and streams (with a relay configured), and ends up on
the path it should. The default suite runs a representative subset; the full 25-pair matrix runs
with PIXELPASS_NETSIM_FULL=1 (`meson test -C build --benchmark netsim-matrix`).

Expected paths TODAY: hole punching (candidate exchange + probes + upgrade) is not built yet, so a
pair is direct only when the viewer's first packet reaches the host unsolicited — the host has a
public address or a full-cone NAT. Every other pair works through the relay. With hole punching
the issue's target is: all direct except symmetric↔symmetric and symmetric↔port-restricted."""
import os
import time

import pytest

import netsim
from conftest import start_host, view

pytestmark = pytest.mark.skipif(netsim.available() is not None or not netsim.shutil.which("turnserver"),
                                reason=str(netsim.available() or "coturn is not installed"))

SUBSET = [("none", "none"), ("full", "symmetric"), ("port", "none"), ("address", "port"),
          ("symmetric", "symmetric")]
FULL = [(h, v) for h in netsim.NAT_KINDS for v in netsim.NAT_KINDS]
PAIRS = FULL if os.environ.get("PIXELPASS_NETSIM_FULL") == "1" else SUBSET
RESULTS = []


def expected_path(host_nat, viewer_nat):
    return "direct" if host_nat in ("none", "full") else "relayed"


@pytest.mark.parametrize("host_nat,viewer_nat", PAIRS)
def test_pair(host_nat, viewer_nat, peers):
    with netsim.Rig(host_nat=host_nat, viewer_nat=viewer_nat, coturn=True) as rig:
        host, ready = start_host(rig, relay=rig.relay, relay_secret=rig.turn_secret,
                                 stun_servers=[rig.stun_server])
        peers.append(host)
        viewer, result = view(rig, ready["ticket"], want_bytes=300_000, no_stun=True, connect_timeout_ms=15000)
        peers.append(viewer)
        assert result["ok"], result
        path = result["stats"]["path"]
        RESULTS.append((host_nat, viewer_nat, path, round(result["connect_ms"]), round(result["first_byte_ms"])))
        print(f"\nMATRIX host={host_nat:9} viewer={viewer_nat:9} path={path:7} "
              f"connect={result['connect_ms']:.0f}ms first_byte={result['first_byte_ms']:.0f}ms")
        assert path == expected_path(host_nat, viewer_nat), (host_nat, viewer_nat, result["stats"])
        hs = host.ask()["stats"]
        assert [v["path"] for v in hs["viewers"]] == [path]
