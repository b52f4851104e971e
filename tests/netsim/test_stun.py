"""STUN on the QUIC socket, against coturn, through real NATs."""
import pytest

import netsim
from conftest import start_host, view
import pixelpass

pytestmark = pytest.mark.skipif(netsim.available() is not None, reason=str(netsim.available()))


def reflexive(ticket):
    t = pixelpass.Ticket.decode(ticket)
    return [(c.address, c.port) for c in t.candidates if c.kind == pixelpass.CandidateKind.REFLEXIVE]


def test_host_behind_nat_learns_router_wan_address(peers):
    with netsim.Rig(host_nat="port", coturn=True) as rig:
        host, ready = start_host(rig, stun_servers=[rig.stun_server])
        peers.append(host)
        port = ready["stats"]["port"]
        # MASQUERADE keeps the port when it is free: the mapping is WAN:port.
        assert reflexive(ready["ticket"]) == [(netsim.WAN_IP["h"], port)]
        assert ready["stats"]["nat"]["reflexive"] == [f"{netsim.WAN_IP['h']}:{port}"]


def test_no_stun_means_no_reflexive_candidate_and_no_request(peers):
    with netsim.Rig(host_nat="port", coturn=True) as rig:
        host, ready = start_host(rig, stun_servers=[rig.stun_server], no_stun=True)
        peers.append(host)
        assert reflexive(ready["ticket"]) == []
        assert ready["stats"]["nat"]["stun"]["requests"] == 0


def test_unanswered_stun_server_leaves_local_candidates(peers):
    with netsim.Rig(host_nat="port") as rig:  # no coturn: nothing answers
        host, ready = start_host(rig, stun_servers=[rig.stun_server])
        peers.append(host)
        assert reflexive(ready["ticket"]) == []
        assert any("no STUN server answered" in e for e in ready["events"]), ready["events"]
        assert ready["stats"]["nat"]["stun"]["timeouts"] >= 1


def test_viewer_on_internet_reaches_full_cone_host_via_reflexive(peers):
    with netsim.Rig(host_nat="full", viewer_nat="none", coturn=True) as rig:
        host, ready = start_host(rig, stun_servers=[rig.stun_server])
        peers.append(host)
        port = ready["stats"]["port"]
        viewer, result = view(rig, ready["ticket"], no_stun=True)
        peers.append(viewer)
        assert result["ok"], result
        assert result["stats"]["address"] == f"{netsim.WAN_IP['h']}:{port}"
        assert result["bytes"] >= 200_000


def test_port_restricted_host_is_not_reachable_unsolicited(peers):
    # Control for the test above: the same set-up behind MASQUERADE drops the viewer's packets
    # (nothing punched a hole), so only hole punching or a relay can connect this pair.
    with netsim.Rig(host_nat="port", viewer_nat="none", coturn=True) as rig:
        host, ready = start_host(rig, stun_servers=[rig.stun_server])
        peers.append(host)
        viewer, result = view(rig, ready["ticket"], no_stun=True, connect_timeout_ms=3000, no_relay=True)
        peers.append(viewer)
        assert not result["ok"], result
        assert result["code"] == int(pixelpass.Result.UNREACHABLE), result
