import time
import netsim
from test_lossy import stream, wait_caught_up, wait_bitrate
from bench_lossy import controller_sample


def test_recover_trace(peers):
    with netsim.Rig(delay_ms=5) as rig:
        host, viewer, epoch = stream(rig, peers)
        wait_caught_up(host, 20)
        rig.rate("v", 2000)
        time.sleep(12)  # scratch: settle on the narrow path
        rig.rate("v", None)
        t0 = time.time() * 1000
        for i in range(30):
            at, kbps, lag, cap, ceil, recv, state = controller_sample(host)
            print(f"REC | {(at - t0) / 1000:5.1f} s | encoder {kbps} | lag {lag} | cap {cap} ceil {ceil} | recv {recv} | {state}", flush=True)
            time.sleep(0.5)
