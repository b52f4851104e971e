"""Port guessing's success rate (docs/BENCHMARKS.md "Port guessing"): `meson test -C build
--benchmark netsim-guess`. Each try is a fresh rig (no NAT state carried over) with a DHT-only host
and viewer, one side behind a symmetric NAT (MASQUERADE fully-random) and the other behind a
port-restricted one (MASQUERADE); PIXELPASS_GUESS_TRIES sets the tries per pair (default 20).
Prints per try and a summary line per pair: successes, how the path was found, ticket -> first
byte and the guesses the spraying side sent."""
import os
import statistics

import pytest

import netsim
from test_rendezvous import MISSING, guess_pair

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
TRIES = int(os.environ.get("PIXELPASS_GUESS_TRIES", "20"))


@pytest.mark.benchmark
@pytest.mark.parametrize("host_nat,viewer_nat", [("port", "symmetric"), ("symmetric", "port")])
def test_guess_success_rate(host_nat, viewer_nat):
    ok, first_bytes, guesses, found = 0, [], [], {}
    for i in range(TRIES):
        peers = []
        try:
            with netsim.Rig(host_nat=host_nat, viewer_nat=viewer_nat, coturn=True, dht=True) as rig:
                r, hs = guess_pair(rig, peers)
                spray = (hs.get("rendezvous", {}).get("guess") if viewer_nat == "symmetric"
                         else r["stats"].get("guess")) or {}
                f = r["stats"].get("found", "-") if r["ok"] else "failed"
                found[f] = found.get(f, 0) + 1
                if r["ok"]:
                    ok += 1
                    first_bytes.append(r["first_byte_ms"])
                    guesses.append(spray.get("guesses", 0))
                print(f"\nGUESS-TRY host={host_nat} viewer={viewer_nat} try={i + 1} found={f} "
                      f"first_byte={r.get('first_byte_ms') or 0:.0f}ms guesses={spray.get('guesses')} "
                      f"{'' if r['ok'] else r.get('error', '')[-160:]}")
        finally:
            for p in peers:
                p.quit()
    median_fb = statistics.median(first_bytes) if first_bytes else 0
    median_g = statistics.median(guesses) if guesses else 0
    print(f"\nGUESS host={host_nat} viewer={viewer_nat} success={ok}/{TRIES} found={found} "
          f"first_byte_median={median_fb:.0f}ms guesses_median={median_g:.0f}")
    # 256 fan ports x 2048 guesses over 64512 ports: 99.97 % per try in theory.
    assert ok >= TRIES * 0.9, found
