"""netsim: real NATs in network namespaces, for pixelpass's connectivity tests (run as root).

Topology (every name carries a per-run tag, so parallel runs never collide):

    <tag>-inet   the "internet": a bridge (br0) on 20.0.0.0/24. coturn listens on 20.0.0.2 only,
                 inside this namespace. 20.0.0.0/24 is an ordinary unicast range on purpose:
                 miniupnpd refuses to map anything when its WAN address is in a reserved or
                 documentation range. It exists only inside these namespaces: none of them has a
                 link or a route to the machine's own network, so nothing leaves.
    <tag>-hr / <tag>-vr   a router per side, WAN on the bridge, LAN 10.1.0.0/24 (host side) or
                 10.2.0.0/24 (viewer side), with the side's NAT in nftables.
    <tag>-h / <tag>-v     the host and the viewer: on their router's LAN, or straight on the
                 bridge (NAT kind "none").

NAT kinds (RFC 4787 terms; Linux conntrack does the translation in every case):
    none        no router: the peer holds a public address
    full        endpoint-independent mapping and filtering ("full cone"): once the LAN side sent
                from a port, anyone may send to the router's WAN address on that port
    address     endpoint-independent mapping, address-dependent filtering
    port        MASQUERADE: endpoint-independent mapping (the port is kept when free),
                address-and-port-dependent filtering ("port-restricted cone")
    symmetric   MASQUERADE fully-random: a fresh random port per destination
A router's UDP mapping expires as Linux's does: 30 s unreplied, 120 s once replied.

With Rig(..., dht=True), a private OpenDHT network runs in <tag>-inet: two Debian `dhtnode`s
(20.0.0.2:4222 and a second one bootstrapped from it), the rendezvous both peers are pointed at
(rig.dht_bootstrap). Nothing of it reaches the public DHT.

Impaired links (the lossy-path tests): every side's link to the internet may carry
    delay_ms    a fixed one-way delay in each direction (wire.py, a userspace TAP cable: this kernel
                has no netem). Both sides delayed by d give a round trip of 4·d.
    loss(side, pct)     nftables `numgen random mod 100 < pct drop` on the side's bridge port, in
                each direction (a direct path crosses both ports, so loss on one side is the path's)
    rate(side, kbit)    a tc tbf bottleneck on the way towards the side (the stream's direction
                when the side is the viewer); rate(side, None) lifts it.

A router may also run miniupnpd (Rig(..., upnp=True), host side): UPnP-IGD, NAT-PMP and PCP on
its LAN, its port mappings as nftables rules in its own `inet filter` table.

Use:
    with Rig(host_nat="port", viewer_nat="symmetric", coturn=True) as rig:
        rig.run("h", ["ip", "addr"])
        p = rig.popen("v", [...])
Cleanup (namespaces, coturn, every process started here) runs on exit, on exceptions, on SIGTERM
and SIGINT, and at interpreter exit.
"""
import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

NAT_KINDS = ("none", "full", "address", "port", "symmetric")

INTERNET = "20.0.0"
RELAY_IP = INTERNET + ".2"
# coturn answers STUN on a second address too: two servers are what tells a symmetric NAT (a new
# mapping per destination) from a cone NAT (doctor's NAT-type check).
STUN2_IP = INTERNET + ".4"
WAN_IP = {"h": INTERNET + ".10", "v": INTERNET + ".20"}
LAN = {"h": "10.1.0", "v": "10.2.0"}
TURN_PORT = 3478
DHT_PORTS = (4222, 4223)

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wire.py")
REALM = "pixelpass.test"

_live = []  # rigs not yet torn down, for the signal / atexit handlers


def _cleanup_all(*_):
    for rig in list(_live):
        rig.close()


def _on_signal(signum, _frame):
    _cleanup_all()
    raise SystemExit(128 + signum)


atexit.register(_cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except ValueError:  # not the main thread
        pass


def available():
    """None when this machine can run the rig, else why not (for a clear skip)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/debian-packages.txt)"
    return None


def _sh(args, check=True, input=None):
    r = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def _nat_rules(kind, wan, lan_host):
    """nftables ruleset for a router of `kind`: WAN interface `wan`, the one LAN peer `lan_host`.
    The sets are refreshed in the forward chain (every packet), not in the nat chains (which see
    only a flow's first packet)."""
    remember = ""
    pre = ""
    if kind == "port":
        post = f'oifname "{wan}" meta l4proto udp masquerade'
    elif kind == "symmetric":
        post = f'oifname "{wan}" meta l4proto udp masquerade fully-random'
    elif kind == "full":
        # Every LAN source port that went out is open to anyone (masquerade keeps the port).
        remember = f'oifname "{wan}" update @out {{ udp sport timeout 120s }}'
        post = f'oifname "{wan}" meta l4proto udp masquerade'
        pre = f'iifname "{wan}" udp dport @out dnat ip to {lan_host}'
    elif kind == "address":
        # (remote address, LAN source port) that went out: any port of that address may answer.
        remember = f'oifname "{wan}" update @out_addr {{ ip daddr . udp sport timeout 120s }}'
        post = f'oifname "{wan}" meta l4proto udp masquerade'
        pre = f'iifname "{wan}" ip saddr . udp dport @out_addr dnat ip to {lan_host}'
    else:
        raise ValueError(f"unknown NAT kind {kind!r}: one of {', '.join(NAT_KINDS)}")
    return f"""
table ip ppnat {{
    set out {{ type inet_service; flags timeout; }}
    set out_addr {{ type ipv4_addr . inet_service; flags timeout; }}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        {pre}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        {post}
    }}
    chain input {{
        # Like any home router, unsolicited traffic to the router itself is dropped. Dropped
        # here, a peer's early probe leaves no conntrack entry behind; accepted, that entry
        # would make MASQUERADE give our own flow to the peer a fresh port (and break punching).
        type filter hook input priority filter; policy accept;
        iifname "{wan}" ct state new meta l4proto udp drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        meta l4proto udp {remember}
        ct state established,related accept
        iifname "lan0" accept
        ct status dnat accept
    }}
}}
"""


class Rig:
    def __init__(self, host_nat="none", viewer_nat="none", coturn=False, secret=None, delay_ms=0, upnp=False,
                 dht=False):
        reason = available()
        if reason:
            raise RuntimeError("netsim: " + reason)
        if host_nat not in NAT_KINDS or viewer_nat not in NAT_KINDS:
            raise ValueError(f"NAT kinds are {', '.join(NAT_KINDS)}")
        self.tag = "pp" + secrets.token_hex(3)
        self.nat = {"h": host_nat, "v": viewer_nat}
        self.want_coturn = coturn
        self.turn_secret = secret or secrets.token_hex(16)
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        self.delay_ms = delay_ms
        self.wires = []
        if upnp and host_nat == "none":
            raise ValueError("upnp=True needs a host router (host_nat other than 'none')")
        self.want_upnp = upnp
        self.want_dht = dht
        self.dhtnodes = []
        self.miniupnpd = None
        self.namespaces = []
        self.procs = []
        self.coturn = None
        self.coturn_log = None
        self.closed = False

    # ---- names and addresses ----

    def ns(self, who):
        """Namespace name: 'inet', 'h', 'v', 'hr', 'vr'."""
        return f"{self.tag}-{who}"

    def address(self, side):
        """The peer's own address (LAN address behind a router)."""
        return WAN_IP[side] if self.nat[side] == "none" else LAN[side] + ".2"

    def public_address(self, side):
        """Where the side appears on the internet: its router's WAN address, or its own."""
        return WAN_IP[side]

    @property
    def relay(self):
        return f"turn:{RELAY_IP}:{TURN_PORT}"

    @property
    def dht_bootstrap(self):
        """The private DHT's bootstrap node, as --dht-bootstrap takes it."""
        return [f"{RELAY_IP}:{DHT_PORTS[0]}"]

    @property
    def stun_server(self):
        return f"{RELAY_IP}:{TURN_PORT}"

    @property
    def stun_servers(self):
        """Two STUN addresses of the rig's coturn."""
        return [f"{RELAY_IP}:{TURN_PORT}", f"{STUN2_IP}:{TURN_PORT}"]

    # ---- lifecycle ----

    def __enter__(self):
        _live.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _add_ns(self, who):
        name = self.ns(who)
        _sh(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.run(who, ["ip", "link", "set", "lo", "up"])
        return name

    def _veth(self, a, a_if, b, b_if):
        _sh(["ip", "-n", self.ns(a), "link", "add", a_if, "type", "veth", "peer", "name", b_if,
             "netns", self.ns(b)])
        self.run(a, ["ip", "link", "set", a_if, "up"])
        self.run(b, ["ip", "link", "set", b_if, "up"])

    def _link(self, a, a_if, b, b_if):
        """A veth pair, or with delay_ms a wire.py cable, between namespaces a and b."""
        if not self.delay_ms:
            self._veth(a, a_if, b, b_if)
            return
        p = subprocess.Popen([sys.executable, WIRE, self.ns(a), a_if, self.ns(b), b_if, str(self.delay_ms)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        self.wires.append(p)
        line = p.stdout.readline().strip()  # the wire says "ready" or dies saying why
        if line != "ready":
            p.wait()
            raise RuntimeError(f"wire.py did not start ({p.returncode}): {p.stderr.read().strip()}")
        self.run(a, ["ip", "link", "set", a_if, "up"])
        self.run(b, ["ip", "link", "set", b_if, "up"])

    def _build(self):
        self._add_ns("inet")
        self.run("inet", ["ip", "link", "add", "br0", "type", "bridge"])
        self.run("inet", ["ip", "link", "set", "br0", "up"])
        self.run("inet", ["ip", "addr", "add", RELAY_IP + "/24", "dev", "br0"])
        self.run("inet", ["ip", "addr", "add", STUN2_IP + "/24", "dev", "br0"])
        for side in ("h", "v"):
            self._add_ns(side)
            port = f"p-{side}"
            if self.nat[side] == "none":
                self._link("inet", port, side, "eth0")
                self.run(side, ["ip", "addr", "add", WAN_IP[side] + "/24", "dev", "eth0"])
            else:
                router = side + "r"
                self._add_ns(router)
                self._link("inet", port, router, "wan0")
                self.run(router, ["ip", "addr", "add", WAN_IP[side] + "/24", "dev", "wan0"])
                self._veth(router, "lan0", side, "eth0")
                self.run(router, ["ip", "addr", "add", LAN[side] + ".1/24", "dev", "lan0"])
                self.run(side, ["ip", "addr", "add", LAN[side] + ".2/24", "dev", "eth0"])
                self.run(side, ["ip", "route", "add", "default", "via", LAN[side] + ".1"])
                self.run(router, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
                # Linux's defaults, spelled out: what the keep-alives must beat.
                self.run(router, ["sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=30"], check=False)
                self.run(router, ["sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout_stream=120"],
                         check=False)
                _sh(["ip", "netns", "exec", self.ns(router), "nft", "-f", "-"],
                    input=_nat_rules(self.nat[side], "wan0", LAN[side] + ".2"))
            self.run("inet", ["ip", "link", "set", port, "master", "br0"])
        if self.want_coturn:
            self.start_coturn()
        if self.want_upnp:
            self.start_miniupnpd()
        if self.want_dht:
            self.start_dht()

    def start_dht(self):
        """Two dhtnodes in the internet namespace, the second bootstrapped from the first: a DHT
        of its own, so a put has more than one node to land on."""
        if not shutil.which("dhtnode"):
            raise RuntimeError("netsim: dhtnode is not installed (package dhtnode, scripts/debian-packages.txt)")
        for i, port in enumerate(DHT_PORTS):
            args = ["dhtnode", "-s", "-p", str(port)]
            if i:
                args += ["-b", f"{RELAY_IP}:{DHT_PORTS[0]}"]
            p = subprocess.Popen(["ip", "netns", "exec", self.ns("inet")] + args, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.dhtnodes.append(p)
            deadline = time.monotonic() + 20
            while True:
                if p.poll() is not None:
                    raise RuntimeError(f"dhtnode -p {port} exited at start ({p.returncode})")
                if self.run("inet", ["ss", "-Hlun", "sport", f"= :{port}"], check=False).stdout.strip():
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dhtnode did not start listening on {port} within 20 s")
                time.sleep(0.1)

    def start_miniupnpd(self):
        """miniupnpd on the host's router: UPnP-IGD (SSDP + HTTP on lan0), NAT-PMP and PCP (UDP
        5351). Its WAN address (20.0.0.10) is ordinary unicast, which it needs to map anything."""
        if not shutil.which("miniupnpd"):
            raise RuntimeError("netsim: miniupnpd is not installed (scripts/debian-packages.txt)")
        # The chains its nftables backend fills (what /etc/miniupnpd/nft_init.sh creates).
        _sh(["ip", "netns", "exec", self.ns("hr"), "nft", "-f", "-"], input="""
table inet filter {
    chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
    chain miniupnpd { }
    chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
    chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
    chain prerouting_miniupnpd { }
    chain postrouting_miniupnpd { }
}
""")
        conf = f"/tmp/{self.tag}-miniupnpd.conf"
        with open(conf, "w") as f:
            f.write(f"""ext_ifname=wan0
listening_ip=lan0
http_port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
uuid={'%08x-0000-4000-8000-%012x' % (secrets.randbits(32), secrets.randbits(48))}
min_lifetime=10
max_lifetime=86400
allow 1024-65535 {LAN['h']}.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
""")
        self.miniupnpd_log = f"/tmp/{self.tag}-miniupnpd.log"
        log = open(self.miniupnpd_log, "w")
        self.miniupnpd = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("hr"), "miniupnpd", "-d", "-f", conf,
             "-P", f"/tmp/{self.tag}-miniupnpd.pid"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.miniupnpd.poll() is not None:
                raise RuntimeError(f"miniupnpd exited at start ({self.miniupnpd.returncode}); log: "
                                   + open(self.miniupnpd_log).read()[-2000:])
            udp = self.run("hr", ["ss", "-Hlun", "sport", "= :5351"], check=False).stdout.strip()
            ssdp = self.run("hr", ["ss", "-Hlun", "sport", "= :1900"], check=False).stdout.strip()
            if udp and ssdp:
                return
            time.sleep(0.1)
        raise RuntimeError("miniupnpd did not start listening within 20 s")

    def upnp_rules(self):
        """The port forwards miniupnpd holds now: the DNAT rules in its prerouting chain."""
        r = self.run("hr", ["nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"])
        return [line.strip() for line in r.stdout.splitlines() if "dnat" in line]

    def start_coturn(self):
        if not shutil.which("turnserver"):
            raise RuntimeError("netsim: coturn (turnserver) is not installed (scripts/debian-packages.txt)")
        self.coturn_log = f"/tmp/{self.tag}-coturn.log"
        args = ["ip", "netns", "exec", self.ns("inet"), "turnserver", "-n",
                "--listening-ip", RELAY_IP, "--listening-ip", STUN2_IP, "--relay-ip", RELAY_IP, "--listening-port", str(TURN_PORT),
                "--use-auth-secret", "--static-auth-secret", self.turn_secret, "--realm", REALM,
                "--fingerprint", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
                "--min-port", "49152", "--max-port", "65535",
                "--log-file", self.coturn_log, "--simple-log", "--no-stdout-log",
                "--pidfile", f"/tmp/{self.tag}-coturn.pid", "--verbose"]
        self.coturn = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.coturn.poll() is not None:
                raise RuntimeError(f"coturn exited at start ({self.coturn.returncode}); log: {self.coturn_log}")
            r = self.run("inet", ["ss", "-Hlun", "src", f"{RELAY_IP}:{TURN_PORT}"], check=False)
            if r.stdout.strip():
                return
            time.sleep(0.1)
        raise RuntimeError("coturn did not start listening within 20 s")

    def stop_coturn(self):
        if self.coturn and self.coturn.poll() is None:
            os.killpg(self.coturn.pid, signal.SIGTERM)
            try:
                self.coturn.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.coturn.pid, signal.SIGKILL)
                self.coturn.wait()
        self.coturn = None

    def close(self):
        if self.closed:
            return
        self.closed = True
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        for p in self.wires:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.stop_coturn()
        for p in self.dhtnodes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if self.miniupnpd and self.miniupnpd.poll() is None:
            os.killpg(self.miniupnpd.pid, signal.SIGKILL)
            self.miniupnpd.wait()
        for name in reversed(self.namespaces):
            # Deleting a namespace also kills nothing by itself: any process we missed keeps it
            # alive, so kill what still runs inside first.
            r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for suffix in ("-coturn.pid", "-miniupnpd.pid", "-miniupnpd.conf") + (
                () if os.environ.get("NETSIM_KEEP_LOGS") else ("-coturn.log", "-miniupnpd.log")):
            try:
                os.unlink(f"/tmp/{self.tag}{suffix}")
            except FileNotFoundError:
                pass
        if self in _live:
            _live.remove(self)

    # ---- running things inside ----

    def run(self, who, args, check=True, timeout=60):
        r = subprocess.run(["ip", "netns", "exec", self.ns(who)] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"[{who}] {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def popen(self, who, args, **kw):
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(who)] + list(args), **kw)
        self.procs.append(p)
        return p

    def cut(self, side, on=True):
        """Drops (on=True) or restores every UDP packet between the side's WAN and the internet
        except the relay's: the direct path dies, the relay path stays."""
        ns = "inet"
        port = f"p-{side}"
        if on:
            rules = f"""
table bridge ppcut_{side} {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        iifname "{port}" ip daddr != {RELAY_IP} drop
        oifname "{port}" ip saddr != {RELAY_IP} drop
    }}
}}
"""
            _sh(["ip", "netns", "exec", self.ns(ns), "nft", "-f", "-"], input=rules)
        else:
            _sh(["ip", "netns", "exec", self.ns(ns), "nft", "delete", "table", "bridge", f"ppcut_{side}"])

    def loss(self, side, pct):
        """Drops `pct` % of the UDP packets at random on the side's link, each direction
        (pct 0 lifts it). nftables numgen: this kernel has no netem."""
        if not 0 <= pct <= 100:
            raise ValueError("loss is a percentage, 0..100")
        table = f"pploss_{side}"
        self.run("inet", ["nft", "delete", "table", "bridge", table], check=False)
        if pct == 0:
            return
        port = f"p-{side}"
        _sh(["ip", "netns", "exec", self.ns("inet"), "nft", "-f", "-"], input=f"""
table bridge {table} {{
    chain pre {{
        type filter hook prerouting priority -10; policy accept;
        iifname "{port}" meta l4proto udp numgen random mod 100 < {int(pct)} drop
    }}
    chain post {{
        type filter hook postrouting priority -10; policy accept;
        oifname "{port}" meta l4proto udp numgen random mod 100 < {int(pct)} drop
    }}
}}
""")

    def rate(self, side, kbit, queue_ms=100):
        """A token-bucket bottleneck of `kbit` kbit/s towards the side (None lifts it); packets
        wait up to `queue_ms` in its queue, then drop, like a router's buffer."""
        port = f"p-{side}"
        if kbit is None:
            self.run("inet", ["tc", "qdisc", "del", "dev", port, "root"], check=False)
            return
        if kbit <= 0:
            raise ValueError("rate must be > 0 kbit/s")
        # A burst of 10 ms at the rate (at least a few full frames) keeps tbf smooth, not bursty.
        burst = max(kbit * 1000 // 8 // 100, 8 * 1514)
        have = self.run("inet", ["tc", "qdisc", "show", "dev", port]).stdout
        verb = "change" if " tbf " in have else "add"
        self.run("inet", ["tc", "qdisc", verb, "dev", port, "root", "tbf", "rate", f"{kbit}kbit",
                          "burst", str(burst), "latency", f"{queue_ms}ms"])

    def turn_credentials(self, lifetime_s=600, user="pixelpass"):
        """REST-API credentials for the rig's coturn (what a host mints from the secret)."""
        import base64
        import hashlib
        import hmac
        username = f"{int(time.time()) + lifetime_s}:{user}"
        password = base64.b64encode(hmac.new(self.turn_secret.encode(), username.encode(),
                                             hashlib.sha1).digest()).decode()
        return username, password
