"""Helpers for the netsim tests: pixelpass peers (peer.py) run inside the rig's namespaces."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import netsim  # noqa: E402

PEER = os.path.join(HERE, "peer.py")


def _env(extra=None):
    env = dict(os.environ)
    assert env.get("PIXELPASS_LIBRARY"), "PIXELPASS_LIBRARY must point at the built library (meson sets it)"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Peer:
    """A peer.py process in a namespace, spoken to in JSON lines."""

    def __init__(self, rig, who, args, env=None):
        """`env`: variables to set in the peer's environment (None as a value removes one)."""
        self.proc = rig.popen(who, [sys.executable, PEER] + args, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env(env))

    def read(self, timeout=60):
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("peer said nothing for %s s" % timeout)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer exited ({self.proc.wait()})")
        return json.loads(line)

    def ask(self, cmd="stats", timeout=60):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                pass


def start_host(rig, env=None, **options):
    p = Peer(rig, "h", ["host", json.dumps(options)], env=env)
    first = p.read()
    assert first["ok"], first
    return p, first


def view(rig, ticket, want_bytes=200_000, **options):
    p = Peer(rig, "v", ["view", ticket, json.dumps(options), str(want_bytes)])
    return p, p.read(timeout=90)


@pytest.fixture
def peers():
    """Collects Peer processes and asks them to quit at the end (the rig kills what is left)."""
    started = []
    yield started
    for p in started:
        p.quit()
