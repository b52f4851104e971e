"""Port mapping on a real gateway: the host's router runs miniupnpd (UPnP-IGD, NAT-PMP and PCP,
nftables backend). The host sits behind a port-restricted NAT and the viewer behind a symmetric
one: without a mapping that pair needs a relay (the baseline below proves it in the same rig), with
one the viewer reaches the host directly. The mapping is a DNAT rule on the router while the host
shares and is gone once it quits. Nothing here talks to the machine's real gateway: each process
runs inside the rig's namespaces, whose only gateway is the rig's router."""
import time

import pytest

import netsim
from conftest import start_host, view
import pixelpass

pytestmark = pytest.mark.skipif(netsim.available() is not None or not netsim.shutil.which("miniupnpd"),
                                reason=str(netsim.available() or "miniupnpd is not installed"))

PROTOCOL_NAMES = {"upnp": "UPnP-IGD", "natpmp": "NAT-PMP", "pcp": "PCP"}


def wait_for(condition, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("protocol", ["upnp", "natpmp", "pcp"])
def test_mapped_candidate_reaches_symmetric_viewer_directly(peers, protocol):
    with netsim.Rig(host_nat="port", viewer_nat="symmetric", upnp=True) as rig:
        assert rig.upnp_rules() == []
        # No STUN and no relay: the mapping is the only public way in.
        host, ready = start_host(rig, env={"PIXELPASS_PORTMAP": protocol}, no_stun=True, no_relay=True)
        peers.append(host)
        ticket = pixelpass.Ticket.decode(ready["ticket"])
        mapped = [c for c in ticket.candidates if c.kind == pixelpass.CandidateKind.MAPPED]
        assert len(mapped) == 1 and mapped[0].address == netsim.WAN_IP["h"], ticket.candidates
        pm = ready["stats"]["nat"]["port_mapping"]
        assert pm["state"] == "mapped" and pm["protocol"] == PROTOCOL_NAMES[protocol], pm
        assert pm["external"] == f"{netsim.WAN_IP['h']}:{mapped[0].port}"
        assert pm["internal"].startswith(netsim.LAN["h"] + ".2:")
        print(f"\n{protocol}: mapping in {pm['map_ms']:.0f} ms")
        rules = rig.upnp_rules()
        assert len(rules) == 1 and f"dport {mapped[0].port}" in rules[0], rules

        viewer, result = view(rig, ready["ticket"], want_bytes=500_000, no_stun=True, no_relay=True,
                              connect_timeout_ms=15000)
        peers.append(viewer)
        assert result["ok"], result
        assert result["stats"]["path"] == "direct", result["stats"]
        assert result["stats"]["candidate"] == "mapped", result["stats"]
        assert result["stats"]["address"] == f"{mapped[0].address}:{mapped[0].port}"
        print(f"{protocol}: viewer connected in {result['connect_ms']:.0f} ms over the mapping")

        viewer.quit()
        host.quit()
        assert host.proc.returncode == 0
        # Deleted on exit: the router forwards nothing any more.
        wait_for(lambda: rig.upnp_rules() == [], timeout=20, what="the mapping to be deleted")


def test_without_mapping_the_same_pair_needs_a_relay(peers):
    # The baseline for the test above: same NATs, no mapping (the host says --no-port-mapping
    # although the router offers one), no relay → the viewer cannot get in, and is told why.
    with netsim.Rig(host_nat="port", viewer_nat="symmetric", upnp=True) as rig:
        host, ready = start_host(rig, env={"PIXELPASS_PORTMAP": None}, no_stun=True, no_relay=True,
                                 no_port_mapping=True)
        peers.append(host)
        kinds = [c.kind for c in pixelpass.Ticket.decode(ready["ticket"]).candidates]
        assert pixelpass.CandidateKind.MAPPED not in kinds
        assert ready["stats"]["nat"]["port_mapping"] is None
        assert rig.upnp_rules() == []
        viewer, result = view(rig, ready["ticket"], no_stun=True, no_relay=True, connect_timeout_ms=5000)
        peers.append(viewer)
        assert not result["ok"] and result["code"] == int(pixelpass.Result.UNREACHABLE), result


def test_no_gateway_service_means_no_mapping_and_a_quick_start(peers):
    # A router without miniupnpd: every protocol fails (PCP and NAT-PMP are refused at once, SSDP
    # hears nothing), the ticket goes out without a mapped candidate and the stats say why.
    with netsim.Rig(host_nat="port", viewer_nat="none") as rig:
        started = time.monotonic()
        host, ready = start_host(rig, env={"PIXELPASS_PORTMAP": None}, no_stun=True, no_relay=True)
        took = time.monotonic() - started
        peers.append(host)
        kinds = [c.kind for c in pixelpass.Ticket.decode(ready["ticket"]).candidates]
        assert pixelpass.CandidateKind.MAPPED not in kinds
        pm = wait_for(lambda: (lambda p: p if p["state"] != "trying" else None)(
            host.ask()["stats"]["nat"]["port_mapping"]), timeout=30, what="the mapping attempts to end")
        assert pm["state"] == "failed", pm
        assert "PCP:" in pm["error"] and "NAT-PMP:" in pm["error"] and "UPnP-IGD:" in pm["error"], pm
        print(f"\nno gateway service: host ready in {took:.1f} s (mapping attempts {pm['map_ms']:.0f} ms)")
        assert took < 15


@pytest.mark.parametrize("protocol", ["pcp", "upnp"])
def test_mapping_is_renewed_while_sharing(peers, protocol):
    # A short lease (the router's minimum) so a renewal happens within the test: the mapping
    # outlives its first lease, and the stats count the renewals.
    with netsim.Rig(host_nat="port", viewer_nat="none", upnp=True) as rig:
        host, ready = start_host(rig, env={"PIXELPASS_PORTMAP": protocol, "PIXELPASS_PORTMAP_LIFETIME": "10"},
                                 no_stun=True, no_relay=True)
        peers.append(host)
        first = ready["stats"]["nat"]["port_mapping"]
        assert first["state"] == "mapped", first
        lease = first["lifetime_s"]
        assert lease <= 60, first
        pm = wait_for(lambda: (lambda p: p if p["renewals"] >= 2 else None)(host.ask()["stats"]["nat"]["port_mapping"]),
                      timeout=3 * lease + 30, what="two renewals")
        assert pm["state"] == "mapped" and pm["external"] == first["external"] and "error" not in pm, pm
        assert len(rig.upnp_rules()) == 1
        print(f"\n{protocol}: lease {lease} s, {pm['renewals']} renewals")
        host.quit()
        wait_for(lambda: rig.upnp_rules() == [], timeout=20, what="the mapping to be deleted")
