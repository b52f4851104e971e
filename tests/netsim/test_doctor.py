"""doctor's network checks behind real NATs: the NAT type from two STUN addresses of the rig's
coturn (full cone vs symmetric vs none), port mapping behind a miniupnpd router, and the relay's
credentials checked with a real TURN Allocate. doctor runs through the Python binding inside the
host's namespace, with its own config file; every probe stays inside the rig."""
import json
import os
import sys
import tempfile

import pytest

import netsim
from conftest import _env

pytestmark = pytest.mark.skipif(netsim.available() is not None or not netsim.shutil.which("turnserver"),
                                reason=str(netsim.available() or "coturn is not installed"))


def doctor(rig, config_text, env=None):
    with tempfile.TemporaryDirectory() as home:
        os.makedirs(os.path.join(home, "pixelpass"))
        with open(os.path.join(home, "pixelpass", "config.toml"), "w") as f:
            f.write(config_text)
        environment = _env(dict({"XDG_CONFIG_HOME": home, "DISPLAY": None, "WAYLAND_DISPLAY": None}, **(env or {})))
        code = "import json, pixelpass; print(json.dumps(pixelpass.doctor(probe_timeout_ms=2000)))"
        r = rig.popen("h", [sys.executable, "-c", code], env=environment, stdout=netsim.subprocess.PIPE,
                      stderr=netsim.subprocess.PIPE, text=True)
        out, err = r.communicate(timeout=120)
        assert r.returncode == 0, err
        report = json.loads(out)
    return {c["name"]: c for c in report["checks"]}, report


def stun_config(rig, extra=""):
    servers = ", ".join(f'"{s}"' for s in rig.stun_servers)
    return f"[network]\nstun_servers = [{servers}]\n{extra}"


@pytest.mark.parametrize("nat, kind, status", [
    ("full", "endpoint-independent mapping", "ok"),
    ("port", "endpoint-independent mapping", "ok"),
    ("symmetric", "endpoint-dependent mapping", "warning"),
    ("none", "no NAT", "ok"),
])
def test_nat_type(nat, kind, status):
    with netsim.Rig(host_nat=nat, coturn=True) as rig:
        checks, _ = doctor(rig, stun_config(rig))
        c = checks["NAT type"]
        assert c["status"] == status and c["detail"].startswith(kind), c
        for server in rig.stun_servers:
            assert server in c["detail"]
        if nat == "symmetric":
            assert "relay" in c["fix"], c  # no relay configured: says how to get one


def test_nat_type_unreachable_when_no_server_answers():
    with netsim.Rig(host_nat="port") as rig:  # no coturn: nothing answers
        checks, _ = doctor(rig, stun_config(rig))
        c = checks["NAT type"]
        assert c["status"] == "warning" and c["detail"].startswith("unreachable"), c


def test_port_mapping_available_behind_miniupnpd():
    with netsim.Rig(host_nat="port", upnp=True) as rig:
        checks, _ = doctor(rig, "", env={"PIXELPASS_PORTMAP": None})
        c = checks["port mapping (UPnP / NAT-PMP / PCP)"]
        assert c["status"] == "ok", c
        for name in ("PCP: available", "NAT-PMP: available", "UPnP-IGD: available"):
            assert name in c["detail"], c
        assert netsim.WAN_IP["h"] in c["detail"]
        # The probe's own mappings are deleted at once.
        assert rig.upnp_rules() == []


def test_port_mapping_absent_without_a_gateway_service():
    with netsim.Rig(host_nat="port") as rig:
        checks, _ = doctor(rig, "", env={"PIXELPASS_PORTMAP": None})
        c = checks["port mapping (UPnP / NAT-PMP / PCP)"]
        assert c["status"] == "warning" and "router" in c["fix"], c
        assert "refused" in c["detail"] and "SSDP" in c["detail"], c


def test_port_mapping_off_in_tests_and_by_config():
    with netsim.Rig(host_nat="port", upnp=True) as rig:
        checks, _ = doctor(rig, "")  # the suite's PIXELPASS_PORTMAP=off
        assert checks["port mapping (UPnP / NAT-PMP / PCP)"]["status"] == "skipped"
        checks, _ = doctor(rig, '[network]\nport_mapping = "off"\n', env={"PIXELPASS_PORTMAP": None})
        c = checks["port mapping (UPnP / NAT-PMP / PCP)"]
        assert c["status"] == "skipped" and "port_mapping" in c["detail"], c


def test_relay_credentials_checked_with_an_allocation():
    with netsim.Rig(host_nat="port", coturn=True) as rig:
        good = f'relay = "{rig.relay}"\nrelay_secret = "{rig.turn_secret}"\n'
        checks, report = doctor(rig, stun_config(rig, good))
        c = checks["relay credentials"]
        assert c["status"] == "ok" and c["detail"].startswith(f"allocated {netsim.RELAY_IP}:"), c

        bad = f'relay = "{rig.relay}"\nrelay_secret = "not-the-secret-of-this-relay"\n'
        checks, report = doctor(rig, stun_config(rig, bad))
        c = checks["relay credentials"]
        assert c["status"] == "error" and "rejected the credentials" in c["detail"], c
        assert "relay_secret" in c["fix"], c
        assert report["can_share"] is False
        assert checks[f"relay {rig.relay}"]["status"] == "ok"  # reachable, only the secret is wrong

        none = f'relay = "{rig.relay}"\n'
        checks, _ = doctor(rig, stun_config(rig, none))
        assert checks["relay credentials"]["status"] == "warning"


def test_unreachable_relay_is_an_error():
    with netsim.Rig(host_nat="port") as rig:  # no coturn
        checks, report = doctor(rig, f'[network]\nrelay = "{rig.relay}"\nrelay_secret = "x"\n')
        c = checks[f"relay {rig.relay}"]
        assert c["status"] == "error", c
        assert report["can_share"] is False  # the CLI then says FAIL and exits 1
