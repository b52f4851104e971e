"""The rig's NATs behave as their names say (RFC 4787 mapping and filtering), measured with plain
UDP sockets: a wrong rig would make every connectivity result below meaningless."""
import json
import os
import subprocess
import sys

import pytest

import netsim

pytestmark = pytest.mark.skipif(netsim.available() is not None, reason=str(netsim.available()))

TOOL = os.path.join(os.path.dirname(__file__), "udp_tool.py")
OTHER_IP = "20.0.0.3"  # a second internet address for address-dependent filtering


def lines(proc, timeout=20):
    out, _ = proc.communicate(timeout=timeout)
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def wait_ready(proc):
    line = proc.stdout.readline()
    assert json.loads(line).get("ready"), line


# kind -> (endpoint-independent mapping, filtering: which senders get through)
EXPECTED = {
    "full": (True, {"exact", "same-ip", "other-ip"}),
    "address": (True, {"exact", "same-ip"}),
    "port": (True, {"exact"}),
    "symmetric": (False, {"exact"}),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_nat_kind_behaves_as_named(kind):
    with netsim.Rig(host_nat=kind) as rig:
        rig.run("inet", ["ip", "addr", "add", OTHER_IP + "/24", "dev", "br0"])
        # No fixed windows: the server ends after the two probes, the client at the "done" marker
        # sent after the three test datagrams (a 6 s window once closed before they came, at load 17).
        server = rig.popen("inet", [sys.executable, TOOL, "serve", netsim.RELAY_IP, "5000,5001", "60", "2"],
                           stdout=subprocess.PIPE, text=True)
        wait_ready(server)
        client = rig.popen("h", [sys.executable, TOOL, "sendrecv", "40000", "90",
                                 f"{netsim.RELAY_IP}:5000", f"{netsim.RELAY_IP}:5001"],
                           stdout=subprocess.PIPE, text=True)
        wait_ready(client)
        seen = lines(server, timeout=90)
        ports = {p["port"]: p["from"] for p in seen}
        assert set(ports) == {5000, 5001}, seen
        assert all(f.startswith(netsim.WAN_IP["h"] + ":") for f in ports.values()), ports
        independent, allowed = EXPECTED[kind]
        assert (ports[5000] == ports[5001]) == independent, ports
        mapped = int(ports[5000].rsplit(":", 1)[1])
        wan = f"{netsim.WAN_IP['h']}:{mapped}"
        for ip, port, label in ((netsim.RELAY_IP, 5000, "exact"), (netsim.RELAY_IP, 5002, "same-ip"),
                                (OTHER_IP, 5000, "other-ip")):
            rig.run("inet", [sys.executable, TOOL, "send", ip, str(port), wan, label])
        # Every NAT kind lets the exact address through: it ends the client's wait.
        rig.run("inet", [sys.executable, TOOL, "send", netsim.RELAY_IP, "5000", wan, "done"])
        got = {p["data"] for p in lines(client, timeout=120) if p["data"] != "probe"}
        assert got == allowed, (kind, got)


def test_cleanup_leaves_nothing():
    with netsim.Rig(host_nat="port", coturn=netsim.shutil.which("turnserver") is not None) as rig:
        names = list(rig.namespaces)
        coturn = rig.coturn
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
    if coturn is not None:
        assert coturn.poll() is not None
