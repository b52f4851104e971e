"""The stream on impaired paths (the rig's wire delay, nftables random loss, a tc tbf bottleneck):
the real host (test source → x264 → fan-out → QUIC) and viewer in network namespaces, the frames
counted as they reach the viewer's local URL (ts_frames: PTS and arrival time).

Default suite: one lossy path (2 % loss each way, 100 ms RTT, 6 Mbit/s setting: ≥ 95 % of the
frames arrive, and the encoder keeps a high bitrate), a player that pauses (it resumes at the live
edge: the viewer skips its queue to the newest keyframe) and one bottleneck drop (6 Mbit/s setting into 2 Mbit/s: the encoder's
bitrate follows within 3 s and climbs back once the bottleneck lifts). The whole table is the
`netsim-lossy` benchmark (bench_lossy.py)."""
import json
import os
import statistics
import time

import pytest

import netsim
from conftest import start_host, Peer

pytestmark = pytest.mark.skipif(netsim.available() is not None, reason=str(netsim.available()))

FPS = 30
ON_TIME_MS = 400  # a frame later than this after capture counts as late


def stream(rig, peers, bitrate=6000, relayed=False, mpv=False, **host_options):
    """A test-source host and a frame-counting viewer (over the rig's coturn when `relayed`; with
    `mpv`, mpv plays the stream and counts the frames it displays); returns (host, viewer, pts epoch)."""
    if relayed:
        host_options.update(relay=rig.relay, relay_secret=rig.turn_secret, relay_only=True)
    host, ready = start_host(rig, source="test", bitrate_kbps=bitrate, fps=FPS, audio=False, no_stun=True,
                             no_port_mapping=True, **host_options)
    peers.append(host)
    viewer = Peer(rig, "v", ["view", ready["ticket"], json.dumps(dict(no_stun=True, frames=not mpv, mpv=mpv,
                                                                     relay_only=relayed,
                                                                     connect_timeout_ms=20000)), "-1"])
    peers.append(viewer)
    first = viewer.read(timeout=90)
    assert first["ok"], first
    deadline = time.monotonic() + 30
    while True:  # the epoch is known once the pipeline runs
        epoch = host.ask()["stats"]["stream"].get("pts_epoch_unix_ms")
        if epoch is not None:
            return host, viewer, epoch
        assert time.monotonic() < deadline, "the host's pipeline did not start"
        time.sleep(0.2)


def window(frames, start_ms, end_ms):
    return [f for f in frames if start_ms <= f[0] < end_ms]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def measure(viewer, epoch, warmup_s, seconds, every=None):
    """Frames per second and arrival latency (arrival − capture, the PTS-epoch method) over
    `seconds` after `warmup_s`; `every()` is called at each 0.5 s poll (a sampler)."""
    time.sleep(warmup_s)  # settling time being measured around, not synchronisation
    start_ms = time.time() * 1000
    start_bytes = viewer.ask()["bytes"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        st = viewer.ask()
        assert st["error"] is None, st["error"]
        if every:
            every()
    end_ms = time.time() * 1000
    got = window(st["frames"], start_ms, end_ms)
    lat = [arrival - (epoch + pts / 90.0) for arrival, pts in got]
    seconds = (end_ms - start_ms) / 1000
    arrivals = sorted(a for a, _ in got)
    gaps = [b - a for a, b in zip([start_ms] + arrivals, arrivals + [end_ms])]
    return {"fps": len(got) / seconds, "frames": len(got), "max_gap_ms": max(gaps),
            "p50_ms": percentile(lat, 0.5) if lat else None, "p95_ms": percentile(lat, 0.95) if lat else None,
            "on_time": sum(1 for x in lat if x <= ON_TIME_MS) / (FPS * seconds),
            "kbps": (st["bytes"] - start_bytes) * 8 / 1000 / seconds, "stats": st["stats"]}


def test_lossy_path_delivers_the_stream(peers):
    # 25 ms each way on each side's cable: 100 ms RTT; 2 % loss each way on the viewer's link.
    with netsim.Rig(delay_ms=25) as rig:
        rig.loss("v", 2)
        host, viewer, epoch = stream(rig, peers)
        bitrates, trace = [], []

        def sample():
            rc = host.ask()["stats"]["rate_control"]
            bitrates.append(rc["bitrate_kbps"])
            trace.append(controller_state(rc))

        m = measure(viewer, epoch, warmup_s=5, seconds=10, every=sample)
        hs = host.ask()["stats"]
        v = hs["viewers"][0]
        print(f"\nLOSSY 2% 100ms cc={hs['congestion_control']}: {m['fps']:.1f} fps, arrival p50 {m['p50_ms']:.0f} ms "
              f"p95 {m['p95_ms']:.0f} ms, bitrate median {statistics.median(bitrates)} min {min(bitrates)} "
              f"end {hs['rate_control']['bitrate_kbps']} kbit/s, "
              f"rtt {v['rtt_ms']:.0f} ms, congestion events {v['congestion_events']}, skips {v['skips']}, "
              f"lost packets {v['lost_packets']} ({v['loss_pct']:.1f} % of datagrams)")
        assert m["fps"] >= 0.95 * FPS, m
        # Arrival latency before the player. The benchmark's quiet-run p95 is 216–288 ms (BBR2);
        # on this shared 2-core machine under other builds (the userspace wire is a Python
        # process) single runs reached 954 ms, so the suite's bound is what holds 20/20.
        assert m["p50_ms"] <= 400, m
        assert m["p95_ms"] <= 1500, m
        # No collapse to the floor, over the whole window: not the last sample alone. In a soak
        # beside a CI run and a benchmark (2026-12-03, load 6–10) the window ended just after one
        # congested tick, at 2980 kbit/s on its way back to 6000, with 30 fps and p95 198 ms.
        assert statistics.median(bitrates) >= 3000, (bitrates, hs["rate_control"], trace)
        # Loss is visible per viewer: ~2 % of the stream's packets are dropped towards the viewer.
        assert v["lost_packets"] > 0, v
        assert 0.5 <= v["loss_pct"] <= 10, v


def test_a_player_that_stops_reading_resumes_at_the_live_edge(peers):
    """A player with a fixed 64 KiB receive buffer pauses for 5 s. The viewer keeps taking the
    stream and skips this player's queue to the newest keyframe (viewer stats local.skips): after
    the pause the player reads what the kernel held, then the stream from the newest keyframe (at
    most a GOP, 2 s, old), not the 5 s it missed. Without the skip the stream waits for the player
    in the viewer, the tunnel and the host, and it reads all of it late."""
    with netsim.Rig(delay_ms=5) as rig:
        host, viewer, epoch = stream(rig, peers)
        viewer.ask("rcvbuf 32768")  # the kernel doubles it: 64 KiB, like a player that sets its own
        before = measure(viewer, epoch, warmup_s=5, seconds=2)
        resumed_ms = viewer.ask("pause 5")["paused_unix_ms"] + 5000
        deadline = time.monotonic() + 30
        while time.time() * 1000 < resumed_ms + 3000:  # the pause, then 3 s of reading again
            st = viewer.ask()
            assert st["error"] is None, st["error"]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        after = measure(viewer, epoch, warmup_s=0, seconds=3)
        local = after["stats"]["local"]
        frames = viewer.ask()["frames"]
        # Read after the pause but captured more than 2.5 s before its end (a GOP and a half).
        stale = [f for f in frames if f[0] >= resumed_ms and epoch + f[1] / 90.0 < resumed_ms - 2500]
        span = (max(f[1] for f in stale) - min(f[1] for f in stale)) / 90.0 if stale else 0
        print(f"\nPAUSED 5 s: before {before['fps']:.1f} fps p50 {before['p50_ms']:.0f} ms; stale frames read after "
              f"the pause {len(stale)} ({span:.0f} ms of stream); from 3 s after it {after['fps']:.1f} fps "
              f"p50 {after['p50_ms']:.0f} ms p95 {after['p95_ms']:.0f} ms; viewer skips {local['skips']}, "
              f"skipped {local['skipped_bytes']} bytes, peak backlog {local['peak_backlog']} bytes")
        assert local["skips"] >= 1, local
        assert local["players"][0]["skips"] == local["skips"], local
        # What the kernel held when the player stopped is read first: ≤ ~64 kB unsent at the
        # viewer (TCP_NOTSENT_LOWAT) and the reader's 64 KiB receive buffer, ~0.6 s of this
        # ~1.8 Mbit/s stream (the test source at the 6 Mbit/s setting). A player that leaves its
        # receive buffer to autotuning had 300–400 kB here, out of the viewer's reach. Beyond that
        # the 5 s missed are gone, not read late: without the skip ≥ 2.5 s of them would be.
        assert span <= 1500, (span, len(stale))
        # The queue held at most a GOP (2 s) and the allowed second.
        assert local["peak_backlog"] <= 4 * 1024 * 1024, local


def wait_bitrate(host, pred, seconds):
    """Polls the host's encoder bitrate until pred(kbps); returns (seconds taken or None, kbps)."""
    start = time.monotonic()
    while True:
        kbps = host.ask()["stats"]["rate_control"]["bitrate_kbps"]
        if pred(kbps):
            return time.monotonic() - start, kbps
        if time.monotonic() - start > seconds:
            return None, kbps
        time.sleep(0.2)


def controller_state(rc):
    """The controller's view of the first viewer at one poll, for a failure's message."""
    v = (rc.get("viewers") or [{}])[0]
    return (round(time.time() % 1000, 2), rc["bitrate_kbps"], v.get("receive_kbps"), v.get("capacity_kbps"),
            v.get("lag_ms"), "congested" if v.get("congested") else "queue" if v.get("queue_rising") else "",
            "recovering" if v.get("recovering") else "", "catching up" if v.get("catching_up") else "")


def wait_caught_up(host, seconds):
    """Polls until the viewer streams at the live edge (the controller no longer counts it as
    joining) at the configured bitrate; returns the last rate-control stats."""
    deadline = time.monotonic() + seconds
    while True:
        rc = host.ask()["stats"]["rate_control"]
        viewers = rc.get("viewers") or []
        if viewers and not viewers[0]["catching_up"] and rc["bitrate_kbps"] == 6000:
            return rc
        assert time.monotonic() < deadline, f"the viewer did not reach the live edge at 6000 kbit/s: {rc}"
        time.sleep(0.2)


def test_bitrate_follows_a_bottleneck_down_and_back(peers):
    with netsim.Rig(delay_ms=5) as rig:
        host, viewer, epoch = stream(rig, peers)
        # A drop while the viewer streams: the first poll used to find 6000 kbit/s before the viewer
        # was even sampled, and the drop then met the join's grace (1–3 s).
        wait_caught_up(host, 20)
        rig.rate("v", 2000)
        dropped_at = time.time()
        seen, kbps = wait_bitrate(host, lambda k: k + 128 <= 2000, 10)
        assert seen is not None, f"the bitrate never went below 2 Mbit/s ({kbps})"
        # The host's own record of when the encoder got the lower bitrate: the poll above adds the
        # latency of asking a peer process in a namespace, seconds on a loaded machine.
        changed = host.ask()["stats"]["rate_control"]["bitrate_changed_unix_ms"] / 1000
        reacted = changed - dropped_at
        print(f"\nRATE 6→2 Mbit/s: encoder at {kbps} kbit/s {reacted:.2f} s after the drop (seen after {seen:.2f} s)")
        assert reacted <= 3.0, (reacted, seen, kbps)
        # Settled on the narrow path: the frames keep coming.
        m = measure(viewer, epoch, warmup_s=3, seconds=6)
        v = host.ask()["stats"]["viewers"][0]
        print(f"RATE at 2 Mbit/s: {m['fps']:.1f} fps, arrival p50 {m['p50_ms']:.0f} ms p95 {m['p95_ms']:.0f} ms, "
              f"longest gap {m['max_gap_ms']:.0f} ms, held {v['held_bytes']} bytes, skips {v['skips']}")
        # Reported, not asserted: this window starts 3 s after the reaction, when the stream that
        # was in flight at the drop may still be arriving (QUIC retransmits what the tbf dropped,
        # which no skip can remove): p95 39–99 ms in 7 runs with session 13's controller, and
        # 3029 ms in one CI run. The bound, 6–22 s after the drop and through mpv, is bench_lossy's
        # NARROW-MPV row (docs/network.md).
        assert m["fps"] >= 0.8 * FPS, m
        rig.rate("v", None)
        recovered, kbps = wait_bitrate(host, lambda k: k >= 5700, 15)
        print(f"RATE back to open: encoder at {kbps} kbit/s after {recovered} s")
        assert recovered is not None and recovered <= 10.0, (recovered, kbps)
        hs = host.ask()["stats"]
        assert hs["rate_control"]["adaptive"] is True
        # No keyframe storm: a few skips at the drop at most, none after.
        assert hs["viewers"][0]["skips"] <= 3, hs["viewers"][0]
        # The filler probes, as the stats show them (they run only while the encoder sits at a
        # ceiling: after a high one the encoder may climb back without them).
        rc = hs["rate_control"]["viewers"][0]
        print(f"RATE probes: {rc['bandwidth_probes_passed']} of {rc['bandwidth_probes']} passed, "
              f"{hs['viewers'][0]['padding_bytes']} bytes of filler")
        assert 0 <= rc["bandwidth_probes_passed"] <= rc["bandwidth_probes"], rc
        assert (hs["viewers"][0]["padding_bytes"] > 0) == (rc["bandwidth_probes"] > 0), (rc, hs["viewers"][0])


def test_a_path_below_the_floor_is_called_too_poor(peers):
    """A 300 kbit/s bottleneck cannot carry even the 500 kbit/s floor: the encoder goes to the
    floor, the viewer is flagged below_floor and the host says so in plain words (once). The
    viewer hears it from the host (GET /link) and tells its own user once, in its events and its
    stats (path_too_poor); when the bottleneck lifts it says once that the path carries the stream
    again."""
    with netsim.Rig(delay_ms=5) as rig:
        host, viewer, epoch = stream(rig, peers, bitrate=2000)
        rig.rate("v", 300)
        deadline = time.monotonic() + 30
        while True:
            answer = host.ask()
            rc = answer["stats"]["rate_control"]
            told = [e for e in answer["events"] if "too little for this stream" in e]
            if told and rc["viewers"] and rc["viewers"][0]["below_floor"]:
                break
            assert time.monotonic() < deadline, (rc, answer["events"][-5:])
            time.sleep(0.2)
        print(f"\nTOO POOR at 300 kbit/s: {told[0]}; encoder at {rc['bitrate_kbps']} kbit/s")
        assert rc["bitrate_kbps"] == rc["floor_kbps"] == 500, rc
        assert rc["viewers"][0]["followed"] is False or rc["viewers"][0]["below_floor"], rc
        assert "at the floor" in told[0], told
        assert len(told) == 1, told  # said once, not every tick

        # The viewer's side: it asks every 2 s; the answer crosses the same 300 kbit/s path.
        seen = wait_viewer(viewer, lambda st, said: st["path_too_poor"] and said, 30)
        st, said = seen
        print(f"VIEWER told: {said[0]}")
        assert "too little for this stream even at its lowest bitrate (500 kbit/s)" in said[0], said
        link = st["stats"]["link"]
        assert link["too_poor"] is True and link["reason"] == "below_floor", link
        assert link["adaptive"] is True and link["floor_kbps"] == 500 and link["receive_kbps"] < 500, link

        rig.rate("v", None)
        st, said = wait_viewer(viewer, lambda st, said: not st["path_too_poor"], 40)
        back = [e for e in st["events"] if "carries the stream again" in e]
        print(f"VIEWER after the bottleneck lifted: {back}")
        assert len(back) == 1, st["events"][-5:]
        assert st["stats"]["link"]["reason"] == "none", st["stats"]["link"]
        assert len(said) == 1, said  # the path was called too poor once for the whole episode


def wait_viewer(viewer, pred, seconds):
    """Polls the viewer until pred(answer with "path_too_poor", the too-poor events); returns both."""
    deadline = time.monotonic() + seconds
    while True:
        st = viewer.ask()
        assert st["error"] is None, st["error"]
        link = st["stats"].get("link", {})
        st["path_too_poor"] = st["stats"].get("path_too_poor")
        assert st["path_too_poor"] is not None, st["stats"]  # the viewer's stats always carry the verdict
        said = [e for e in st["events"] if "path from the host" in e and "too little" in e]
        if pred(st, said):
            return st, said
        assert time.monotonic() < deadline, (link, st["events"][-5:])
        time.sleep(0.3)
