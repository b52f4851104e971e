"""The tunnel through the real `pixelpass` CLI processes, as a user runs them: a host process prints
a ticket, viewer processes print local URLs, HTTP clients pull the stream from them. What the unit
tests prove inside one process, this proves across processes: a host killed with SIGKILL is noticed
by its viewer, which exits non-zero with one clear line; the viewer cap refuses with the reason;
a viewer process killed mid-stream does not disturb the others."""
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

CLI = os.environ["PIXELPASS_CLI"]


class Proc:
    """A pixelpass process whose stdout's first line we wait for and whose stderr we keep."""

    def __init__(self, *args):
        self.p = subprocess.Popen([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)

    def first_line(self):
        # Blocks until the line arrives or the process dies (EOF); meson's timeout bounds it.
        line = self.p.stdout.readline()
        assert line, "exited %s without output: %s" % (self.p.poll(), self.stderr_text())
        return line.strip()

    def stderr_text(self):
        if self.p.poll() is None:
            return "(still running)"
        return self.p.stderr.read()

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            os.killpg(self.p.pid, sig)
        self.p.wait(timeout=30)

    def wait(self, timeout):
        return self.p.wait(timeout=timeout)


@pytest.fixture
def procs():
    started = []

    def start(*args):
        proc = Proc(*args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def pull(url, nbytes, timeout=30):
    """Reads nbytes of the stream at url; returns how many arrived."""
    got = 0
    with urllib.request.urlopen(url, timeout=timeout) as body:
        while got < nbytes:
            chunk = body.read(min(65536, nbytes - got))
            if not chunk:
                break
            got += len(chunk)
    return got


def host(start, *extra):
    h = start("host", "--source", "synthetic", "--bind", "127.0.0.1", *extra)
    ticket = h.first_line()
    assert ticket.startswith("pxp"), ticket
    return h, ticket


def test_viewer_reports_a_killed_host_and_exits_nonzero(procs):
    h, ticket = host(procs)
    v = procs("view", ticket)
    url = v.first_line()
    assert url.startswith("http://127.0.0.1:"), url
    assert pull(url, 4 << 20) == 4 << 20
    h.kill(signal.SIGKILL)
    started = time.monotonic()
    code = v.wait(timeout=40)
    took = time.monotonic() - started
    err = v.p.stderr.read()
    assert code != 0
    assert "connection lost" in err, err
    # ICMP port-unreachable from the dead host's port ends it in well under the idle timeout.
    assert took < 10, "viewer noticed the dead host after %.1f s" % took


def test_viewer_cap_refuses_with_the_reason_and_keeps_serving(procs):
    h, ticket = host(procs, "--max-viewers", "1")
    first = procs("view", ticket)
    first_url = first.first_line()
    body = urllib.request.urlopen(first_url, timeout=30)  # holds the only seat
    assert len(body.read(1 << 20)) > 0
    # The viewer asks the host before it offers a URL, so a full host is refused up front.
    second = procs("view", ticket)
    assert second.wait(timeout=30) == 1
    assert second.p.stdout.read() == ""
    assert "host is full (1/1)" in second.p.stderr.read()
    # The first viewer still streams, and the host is still up.
    assert len(body.read(4 << 20)) == 4 << 20
    assert h.p.poll() is None
    body.close()


def test_a_viewer_killed_mid_stream_leaves_the_others_alone(procs):
    h, ticket = host(procs)
    doomed = procs("view", ticket)
    doomed_url = doomed.first_line()
    survivor = procs("view", ticket)
    survivor_url = survivor.first_line()
    doomed_body = urllib.request.urlopen(doomed_url, timeout=30)
    assert len(doomed_body.read(1 << 20)) > 0
    survivor_body = urllib.request.urlopen(survivor_url, timeout=30)
    assert len(survivor_body.read(1 << 20)) > 0
    doomed.kill(signal.SIGKILL)
    doomed_body.close()
    assert len(survivor_body.read(16 << 20)) == 16 << 20
    survivor_body.close()
    assert h.p.poll() is None


def test_one_viewer_ticket_says_so_and_refuses_a_second_viewer_plainly(procs):
    h, ticket = host(procs, "--one-viewer", "--max-viewers", "4")
    # The ticket carries the flag: inspect shows it before anyone dials.
    inspect = subprocess.run([CLI, "ticket", "inspect", ticket], capture_output=True, text=True, timeout=30)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["one_viewer"] is True
    first = procs("view", ticket)
    body = urllib.request.urlopen(first.first_line(), timeout=30)
    assert len(body.read(1 << 20)) > 0
    # max-viewers would seat a second one; the ticket does not.
    second = procs("view", ticket)
    assert second.wait(timeout=30) == 1
    assert second.p.stdout.read() == ""
    err = second.p.stderr.read()
    # Told before dialling (from the ticket), and the refusal is the last line, in plain words.
    assert "this ticket admits one viewer: the host refuses any other" in err, err
    assert "this ticket admits one viewer and one is already watching" in err.strip().splitlines()[-1], err
    assert len(body.read(4 << 20)) == 4 << 20  # the first still streams
    body.close()
    # Without the flag, a ticket says so too.
    _, plain = host(procs)
    inspect = subprocess.run([CLI, "ticket", "inspect", plain], capture_output=True, text=True, timeout=30)
    assert json.loads(inspect.stdout)["one_viewer"] is False


def test_a_mangled_ticket_is_one_clear_line_and_exit_1(procs):
    _, ticket = host(procs)
    broken = ticket[:-7]  # the end of the line lost in the paste
    v = procs("view", broken)
    code = v.wait(timeout=30)
    err = v.p.stderr.read().strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "truncated" in err[0], err


def test_view_reads_the_ticket_from_stdin_and_relay_secret_from_a_file(procs, tmp_path):
    # The relay secret from a file: nothing secret on the host's command line. (The relay on a
    # closed loopback port never answers; the host then shares without it, after saying so.)
    secret = "a-relay-secret-read-from-a-file"
    secret_file = tmp_path / "relay.secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    h, ticket = host(procs, "--no-stun", "--relay", "turn:127.0.0.1:9", "--relay-secret-file", str(secret_file))
    with open(f"/proc/{h.p.pid}/cmdline", "rb") as f:
        assert secret.encode() not in f.read()

    # The ticket on stdin: `pixelpass view -`.
    v = subprocess.Popen([CLI, "view", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        v.stdin.write(ticket + "\n")
        v.stdin.close()
        url = v.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), v.stderr.read() if v.poll() is not None else url
        with open(f"/proc/{v.pid}/cmdline", "rb") as f:
            assert ticket.encode() not in f.read()
        assert pull(url, 1 << 20) == 1 << 20
    finally:
        os.killpg(v.pid, signal.SIGKILL)
        v.wait(30)


def test_missing_secret_input_is_one_clear_line(tmp_path):
    r = subprocess.run([CLI, "view", "-"], input="", capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no ticket on standard input" in r.stderr
    missing = tmp_path / "nope.secret"
    r = subprocess.run([CLI, "host", "--source", "synthetic", "--bind", "127.0.0.1", "--relay", "turn:127.0.0.1:9",
                        "--relay-secret-file", str(missing)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(missing) in r.stderr and "relay secret file" in r.stderr


def _udp_port_taken(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
        return False


def test_demo_dht_bootstrap_is_parsed_and_a_bad_node_is_one_clear_line():
    """`demo --dht-bootstrap`: a malformed HOST:PORT ends the demo with one error line naming it
    and exit 1; a real dhtnode on loopback (started here, on a free port) gets the viewer's sealed
    offer to the host (the JSON report's rendezvous); --no-dht turns that off."""
    bad = "127.0.0.1:notaport"
    r = subprocess.run([CLI, "demo", "--headless", "--seconds", "1", "--dht-bootstrap", bad],
                       capture_output=True, text=True, timeout=120)
    if "built without media" in r.stderr or "media support" in r.stderr:
        pytest.skip("built without media support")
    errors = [line for line in r.stderr.strip().splitlines() if "hosting the test source" not in line]
    assert r.returncode == 1 and len(errors) == 1, r.stderr
    assert bad in errors[0] and "DHT bootstrap" in errors[0]

    if not shutil.which("dhtnode"):
        pytest.skip("needs dhtnode (Debian package dhtnode)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = subprocess.Popen(["dhtnode", "-s", "-p", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not _udp_port_taken(port):
            assert node.poll() is None and time.monotonic() < deadline, "dhtnode did not start listening"
            time.sleep(0.1)  # polling, with the deadline above
        r = subprocess.run([CLI, "demo", "--headless", "--json", "--seconds", "1", "--encoder", "x264",
                            "--dht-bootstrap", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["rendezvous"]["offers_received"] >= 1, report["rendezvous"]
        r = subprocess.run([CLI, "demo", "--headless", "--seconds", "1", "--encoder", "x264",
                            "--dht-bootstrap", f"127.0.0.1:{port}", "--no-dht"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "rendezvous" not in r.stdout, r.stdout + r.stderr
    finally:
        node.terminate()
        node.wait(timeout=10)
