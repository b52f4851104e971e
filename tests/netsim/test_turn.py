"""TURN relay (coturn, use-auth-secret) through real NATs: relay-to-relay, --relay-only, bad
credentials, unreachable relay, and the clear message when a pair needs a relay and has none."""
import time

import pytest

import netsim
from conftest import start_host, view
import pixelpass

pytestmark = pytest.mark.skipif(netsim.available() is not None or not netsim.shutil.which("turnserver"),
                                reason=str(netsim.available() or "coturn is not installed"))


def kinds(ticket):
    return [c.kind for c in pixelpass.Ticket.decode(ticket).candidates]


def relay_options(rig, **extra):
    return dict(relay=rig.relay, relay_secret=rig.turn_secret, stun_servers=[rig.stun_server], **extra)


def test_symmetric_pair_streams_through_relay(peers):
    with netsim.Rig(host_nat="symmetric", viewer_nat="symmetric", coturn=True) as rig:
        host, ready = start_host(rig, **relay_options(rig, ticket_lifetime_s=600))
        peers.append(host)
        t = pixelpass.Ticket.decode(ready["ticket"])
        relayed = [c for c in t.candidates if c.kind == pixelpass.CandidateKind.RELAYED]
        assert len(relayed) == 1 and relayed[0].address == netsim.RELAY_IP, t.candidates
        relay = t.relay
        assert relay["host"] == netsim.RELAY_IP and relay["port"] == netsim.TURN_PORT
        # REST-API credentials bounded by the ticket's expiry, never the secret itself.
        assert relay["username"] == f"{t.expiry}:pixelpass"
        viewer, result = view(rig, ready["ticket"], want_bytes=1_000_000, no_stun=True, connect_timeout_ms=15000)
        peers.append(viewer)
        assert result["ok"], result
        assert result["stats"]["path"] == "relayed", result["stats"]
        assert result["stats"]["relay"]["rx_bytes"] >= 1_000_000
        hs = host.ask()["stats"]
        assert [v["path"] for v in hs["viewers"]] == ["relayed"], hs
        assert hs["nat"]["relay"]["allocated"]


def test_relay_only_on_both_sides_reports_relayed(peers):
    with netsim.Rig(host_nat="none", viewer_nat="none", coturn=True) as rig:
        host, ready = start_host(rig, **relay_options(rig, relay_only=True))
        peers.append(host)
        assert kinds(ready["ticket"]) == [pixelpass.CandidateKind.RELAYED]
        viewer, result = view(rig, ready["ticket"], relay_only=True, no_stun=True)
        peers.append(viewer)
        assert result["ok"], result
        assert result["stats"]["path"] == "relayed"


def test_viewer_relay_only_with_direct_host(peers):
    # The host offers direct paths too; the viewer's --relay-only still takes the relay.
    with netsim.Rig(host_nat="none", viewer_nat="none", coturn=True) as rig:
        host, ready = start_host(rig, **relay_options(rig))
        peers.append(host)
        # A ticket without expiry carries relay credentials for 12 h at most (they used to last a
        # day, or as long as the ticket however far off); coturn REST usernames start with it.
        relay = pixelpass.Ticket.decode(ready["ticket"]).relay
        lifetime = int(relay["username"].split(":")[0]) - time.time()
        assert 11.9 * 3600 < lifetime <= 12 * 3600 + 5, relay["username"]
        viewer, result = view(rig, ready["ticket"], relay_only=True, no_stun=True)
        peers.append(viewer)
        assert result["ok"], result
        assert result["stats"]["path"] == "relayed"


def test_bad_relay_secret_is_a_clear_warning_and_direct_still_works(peers):
    with netsim.Rig(host_nat="none", viewer_nat="none", coturn=True) as rig:
        host, ready = start_host(rig, relay=rig.relay, relay_secret="not-the-secret", no_stun=True)
        peers.append(host)
        assert any("rejected the credentials" in e for e in ready["events"]), ready["events"]
        assert pixelpass.CandidateKind.RELAYED not in kinds(ready["ticket"])
        viewer, result = view(rig, ready["ticket"], no_stun=True)
        peers.append(viewer)
        assert result["ok"], result
        assert result["stats"]["path"] == "direct"


def test_bad_relay_secret_with_relay_only_fails_start():
    with netsim.Rig(host_nat="none", coturn=True) as rig:
        from conftest import Peer
        import json
        p = Peer(rig, "h", ["host", json.dumps(dict(relay=rig.relay, relay_secret="wrong", relay_only=True))])
        first = p.read()
        assert not first["ok"]
        assert first["code"] == int(pixelpass.Result.TICKET_REJECTED), first
        assert "rejected the credentials" in first["error"]


def test_unreachable_relay_is_a_clear_warning_and_direct_still_works(peers):
    with netsim.Rig(host_nat="none", viewer_nat="none") as rig:  # no coturn
        host, ready = start_host(rig, relay=rig.relay, relay_secret="s", no_stun=True)
        peers.append(host)
        assert any("does not answer" in e for e in ready["events"]), ready["events"]
        viewer, result = view(rig, ready["ticket"], no_stun=True)
        peers.append(viewer)
        assert result["ok"], result


def test_pair_that_needs_a_relay_says_so(peers):
    with netsim.Rig(host_nat="symmetric", viewer_nat="symmetric", coturn=True) as rig:
        host, ready = start_host(rig, stun_servers=[rig.stun_server])
        peers.append(host)
        viewer, result = view(rig, ready["ticket"], no_stun=True, connect_timeout_ms=3000)
        peers.append(viewer)
        assert not result["ok"]
        assert result["code"] == int(pixelpass.Result.UNREACHABLE)
        assert "relay is needed" in result["error"] and "--relay turn:" in result["error"], result["error"]


def test_viewer_with_wrong_ticket_credentials_gets_relay_error(peers):
    with netsim.Rig(host_nat="symmetric", viewer_nat="symmetric", coturn=True) as rig:
        host, ready = start_host(rig, **relay_options(rig))
        peers.append(host)
        t = pixelpass.Ticket.decode(ready["ticket"])
        t.set_relay(netsim.RELAY_IP, netsim.TURN_PORT, t.relay["username"], "forged")
        viewer, result = view(rig, t.encode(), no_stun=True, connect_timeout_ms=3000)
        peers.append(viewer)
        assert not result["ok"]
        assert "rejected the credentials" in result["error"], result["error"]
