"""The rig's impaired links do what they say, measured with ping and plain UDP: the wire's delay
(a userspace TAP cable), nftables random loss, and a tc tbf bottleneck. The lossy-path stream
tests build on these, so a wrong rig would make their numbers meaningless."""
import json
import os
import subprocess
import sys

import pytest

import netsim

pytestmark = pytest.mark.skipif(netsim.available() is not None, reason=str(netsim.available()))

TOOL = os.path.join(os.path.dirname(__file__), "udp_tool.py")
PORT = 40123


def counted(rig, side, count, size, kbit, idle_s=2.0):
    """Blasts `count` datagrams from the other side to `side`; returns the counter's result."""
    sender = "h" if side == "v" else "v"
    counter = rig.popen(side, [sys.executable, TOOL, "count", "0.0.0.0", str(PORT), str(idle_s)],
                        stdout=subprocess.PIPE, text=True)
    assert json.loads(counter.stdout.readline()).get("ready")
    rig.run(sender, [sys.executable, TOOL, "blast", f"{rig.address(side)}:{PORT}", str(count), str(size),
                     str(kbit)], timeout=120)
    out, _ = counter.communicate(timeout=60 + idle_s)
    return json.loads(out.strip().splitlines()[-1])


def ping_rtts(rig, count=10):
    """Round trips host → viewer → host of small UDP probes (an echo on the viewer)."""
    echo = rig.popen("v", [sys.executable, TOOL, "echo", "0.0.0.0", str(PORT), "60"], stdout=subprocess.PIPE,
                     text=True)
    assert json.loads(echo.stdout.readline()).get("ready")
    r = rig.run("h", [sys.executable, TOOL, "rtt", f"{rig.address('v')}:{PORT}", str(count)], timeout=60)
    echo.kill()
    return json.loads(r.stdout)["rtts_ms"]


def test_wire_adds_its_delay_each_way():
    # 25 ms on each side's cable, each way: 4 × 25 = 100 ms round trip between host and viewer.
    with netsim.Rig(delay_ms=25) as rig:
        rtts = ping_rtts(rig)
    assert len(rtts) >= 9, rtts
    assert min(rtts) >= 99, rtts  # the delay itself: no probe can be faster than the cables
    # Upper bound loose: on a loaded machine the Python echo and wire are scheduled late at times.
    assert sorted(rtts)[len(rtts) // 2] < 300, rtts


def test_no_delay_without_the_wire():
    with netsim.Rig() as rig:
        rtts = ping_rtts(rig, count=5)
    # Veth pairs add no delay: most probes come back far below the wire's 100 ms (a loaded
    # machine may delay one).
    assert len(rtts) >= 4 and sorted(rtts)[len(rtts) // 2] < 60, rtts


def test_random_loss_drops_that_share():
    with netsim.Rig() as rig:
        rig.loss("v", 20)
        lossy = counted(rig, "v", 3000, 200, 1000)
        rig.loss("v", 0)
        clean = counted(rig, "v", 1000, 200, 1000)
    # Binomial: 3000 draws at 20 % has a standard deviation of 0.7 %; the bounds are > 5 sigma.
    share = lossy["packets"] / 3000
    assert 0.76 <= share <= 0.84, lossy
    assert clean["packets"] == 1000, clean


def test_rate_limit_caps_the_throughput_and_lifts():
    with netsim.Rig(delay_ms=5) as rig:
        rig.rate("v", 2000)
        # 8 Mbit/s offered for ~3 s into a 2 Mbit/s bucket: the surplus drops, the rest is paced.
        slow = counted(rig, "v", 2000, 1200, 8000)
        rig.rate("v", 6000)
        faster = counted(rig, "v", 2000, 1200, 8000)
        rig.rate("v", None)
        free = counted(rig, "v", 1000, 1200, 4000)
    slow_kbit = slow["bytes"] * 8 / slow["seconds"] / 1000
    faster_kbit = faster["bytes"] * 8 / faster["seconds"] / 1000
    assert 1600 <= slow_kbit <= 2400, slow
    assert 4800 <= faster_kbit <= 7200, faster
    assert free["packets"] >= 990, free
