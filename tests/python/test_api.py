"""The Python binding's contract with the library: loading and its version check, the error
mapping, struct layouts, hosts, callbacks, and today's PP_ERR_UNSUPPORTED for repair."""
import ctypes
import gc
import json
import os
import re
import subprocess

import pytest

import pixelpass
from pixelpass import _lib
from pixelpass import Host, PixelpassError, Result, Ticket

from conftest import FINGERPRINT, SECRET


# ---- loading ------------------------------------------------------------------------------------

def test_version_matches_the_header():
    layout = _layout()
    major, minor, patch = pixelpass.version_info()
    assert major == layout["versions"]["PIXELPASS_VERSION_MAJOR"] == pixelpass.ABI_MAJOR
    assert pixelpass.version() == f"{major}.{minor}.{patch}"


def test_version_check_refuses_another_major():
    with pytest.raises(pixelpass.VersionMismatch) as info:
        _lib.load(os.environ["PIXELPASS_LIBRARY"], expected_major=pixelpass.ABI_MAJOR + 1)
    assert f"ABI {pixelpass.ABI_MAJOR + 1}" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(pixelpass.LibraryError) as info:
        _lib.load(str(tmp_path / "libpixelpass.so.0"))
    assert "PIXELPASS_LIBRARY" in str(info.value)


def test_library_path_precedence(monkeypatch):
    monkeypatch.setattr(_lib, "_explicit_path", None)
    monkeypatch.setenv("PIXELPASS_LIBRARY", "/from/env/libpixelpass.so")
    assert pixelpass.library_path() == "/from/env/libpixelpass.so"
    monkeypatch.setattr(_lib, "_explicit_path", "/explicit/libpixelpass.so")
    assert pixelpass.library_path() == "/explicit/libpixelpass.so"
    monkeypatch.setattr(_lib, "_explicit_path", None)
    monkeypatch.delenv("PIXELPASS_LIBRARY")
    assert "pixelpass" in pixelpass.library_path()
    # Once loaded, the library cannot be switched underneath live objects.
    with pytest.raises(pixelpass.LibraryError):
        pixelpass.set_library_path("/somewhere/else/libpixelpass.so")


def test_every_table_entry_is_bound():
    lib = _lib.lib()
    for name, argtypes, restype, errcheck in _lib.FUNCTIONS:
        func = getattr(lib, name)
        assert func.argtypes == argtypes and func.restype == restype
        if errcheck:
            assert func.errcheck is not None
    exported = {name for name, *_ in _lib.FUNCTIONS}
    assert len(exported) == len(_lib.FUNCTIONS)


# ---- drift from the header ----------------------------------------------------------------------

def _header():
    with open(os.environ["PIXELPASS_HEADER"], encoding="utf-8") as f:
        return f.read()


def test_function_table_covers_the_header():
    """Every PP_EXPORT function in pixelpass.h is in FUNCTIONS, and nothing else is."""
    declared = set(re.findall(r"^PP_EXPORT[^(]*?\b(pp_\w+)\(", _header(), re.M))
    assert len(declared) > 30
    assert {name for name, *_ in _lib.FUNCTIONS} == declared


def test_result_enum_matches_the_header():
    in_header = {f"PP_{m[0]}": int(m[1])
                 for m in re.findall(r"^\s*PP_(OK|ERR_\w+)\s*=\s*(-?\d+)", _header(), re.M)}
    in_binding = {("PP_OK" if r.name == "OK" else f"PP_ERR_{r.name}"): int(r) for r in Result}
    assert in_binding == in_header


@pytest.mark.parametrize("prefix, enum", [
    ("PP_CANDIDATE_", pixelpass.CandidateKind),
    ("PP_EVENT_", pixelpass.EventType),
    ("PP_LOG_", pixelpass.LogLevel),
    ("PP_PLAYER_", pixelpass.PlayerKind),
])
def test_small_enums_match_the_header(prefix, enum):
    in_header = {m[0]: int(m[1])
                 for m in re.findall(rf"^\s*{prefix}(\w+)\s*=\s*(-?\d+)", _header(), re.M)
                 if m[0] != "FORCE_INT32_"}  # the int-width sentinel, not a value
    assert {e.name: int(e) for e in enum} == in_header


# ---- errors -------------------------------------------------------------------------------------

def test_strerror_names_every_code():
    unknown = pixelpass.strerror(-1000)
    names = {}
    for code in Result:
        name = pixelpass.strerror(code)
        assert name and name != unknown, code
        names[name] = code
    assert len(names) == len(Result), "every code has its own name"


def test_error_carries_code_name_and_detail():
    with pytest.raises(PixelpassError) as info:
        Ticket.new(FINGERPRINT, b"x" * 40)
    err = info.value
    assert err.code == Result.INVALID_ARGUMENT and isinstance(err.code, Result)
    assert err.name == pixelpass.strerror(Result.INVALID_ARGUMENT)
    assert "secret" in err.detail
    assert str(err) == f"{err.name}: {err.detail}"


def test_error_subclasses():
    assert _lib._error_class(Result.TICKET_CHECKSUM) is pixelpass.TicketError
    assert _lib._error_class(Result.UNSUPPORTED) is pixelpass.UnsupportedError
    assert _lib._error_class(Result.HOST_KEY_MISMATCH) is pixelpass.ConnectionFailed
    assert _lib._error_class(Result.MISSING_PLUGIN) is pixelpass.MediaError
    assert _lib._error_class(Result.PLAYER) is pixelpass.MediaError
    assert _lib._error_class(Result.CONFIG) is PixelpassError
    # A code newer than the binding keeps its number.
    assert PixelpassError(-99, "x", "").code == -99


def test_buffer_convention_at_the_c_level():
    lib = _lib.lib()
    t = Ticket.new(FINGERPRINT, SECRET)
    needed = ctypes.c_size_t(0)
    assert lib.pp_ticket_encode(t._handle, None, 0, ctypes.byref(needed)) == Result.BUFFER_TOO_SMALL
    assert needed.value == len(t.encode()) + 1
    exact = ctypes.create_string_buffer(needed.value)
    assert lib.pp_ticket_encode(t._handle, exact, needed.value, ctypes.byref(needed)) == Result.OK
    assert exact.value.decode() == t.encode()
    # A NULL handle is refused by the library, and the errcheck turns it into an exception.
    with pytest.raises(PixelpassError) as info:
        lib.pp_ticket_encode(None, None, 0, None)
    assert info.value.code == Result.INVALID_ARGUMENT


def test_last_error_cleared_by_success():
    lib = _lib.lib()
    with pytest.raises(PixelpassError):
        Ticket.decode("nonsense")
    assert lib.pp_last_error() != b""
    Ticket.new(FINGERPRINT, SECRET)
    assert lib.pp_last_error() == b""


# ---- struct layouts -----------------------------------------------------------------------------

def _layout():
    out = subprocess.run([os.environ["PIXELPASS_LAYOUT_DUMP"]], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("c_name, mirror", [
    ("pp_event", _lib.Event),
    ("pp_host_options", _lib.HostOptions),
    ("pp_viewer_options", _lib.ViewerOptions),
    ("pp_repair_options", _lib.RepairOptions),
    ("pp_demo_options", _lib.DemoOptions),
])
def test_struct_layout_matches_header(c_name, mirror):
    c = _layout()[c_name]
    assert ctypes.sizeof(mirror) == c["size"]
    py_fields = {name: getattr(mirror, name).offset for name, _ in mirror._fields_}
    assert py_fields == c["fields"]


def test_constants_match_header():
    v = _layout()["versions"]
    assert _lib.HOST_OPTIONS_VERSION == v["PP_HOST_OPTIONS_VERSION"]
    assert _lib.VIEWER_OPTIONS_VERSION == v["PP_VIEWER_OPTIONS_VERSION"]
    assert _lib.REPAIR_OPTIONS_VERSION == v["PP_REPAIR_OPTIONS_VERSION"]
    assert _lib.FINGERPRINT_SIZE == v["PP_FINGERPRINT_SIZE"]
    assert (_lib.SECRET_MIN_SIZE, _lib.SECRET_MAX_SIZE) == (v["PP_SECRET_MIN_SIZE"],
                                                             v["PP_SECRET_MAX_SIZE"])


def test_options_init_rejects_unknown_versions():
    lib = _lib.lib()
    opts = _lib.HostOptions()
    for bad in (0, _lib.HOST_OPTIONS_VERSION + 1):
        with pytest.raises(PixelpassError) as info:
            lib.pp_host_options_init(ctypes.byref(opts), bad)
        assert info.value.code == Result.VERSION
    vopts = _lib.ViewerOptions()
    with pytest.raises(PixelpassError) as info:
        lib.pp_viewer_options_init(ctypes.byref(vopts), 0)
    assert info.value.code == Result.VERSION


# ---- host ---------------------------------------------------------------------------------------

def test_host_fingerprint_and_ticket():
    with Host(source="synthetic", bind_address="127.0.0.1", no_stun=True) as a, Host() as b:
        assert len(a.fingerprint) == 64 and all(ch in "0123456789abcdef" for ch in a.fingerprint)
        assert a.fingerprint != b.fingerprint  # a fresh key pair per host
        t = Ticket.decode(a.ticket())
        assert t.fingerprint.hex() == a.fingerprint  # the ticket pins this host's key
        assert pixelpass._lib.SECRET_MIN_SIZE <= len(t.secret) <= pixelpass._lib.SECRET_MAX_SIZE
        assert a.ticket() == a.ticket()
        assert Ticket.decode(b.ticket()).secret != t.secret
        assert isinstance(a.stats(), dict)


def test_host_options_mapping():
    with Host(ticket_lifetime_s=600, apps=["firefox", "mpv"], stun_servers=["127.0.0.1:3478"],
              audio=False, name="test host") as h:
        expiry = Ticket.decode(h.ticket()).expiry
        assert expiry > 0
    with pytest.raises(TypeError) as info:
        Host(no_such_option=1)
    assert "valid options" in str(info.value)
    with pytest.raises(TypeError):
        Host(apps="firefox")  # a list, not a string
    with pytest.raises(TypeError):
        Host(port="4433")


def test_host_closed():
    h = Host()
    h.close()
    h.close()
    with pytest.raises(ValueError):
        h.ticket()


def test_callback_reference_kept_while_registered():
    received = []
    h = Host(callback=received.append)
    thunk = h._callback_thunk
    assert isinstance(thunk, _lib.EVENT_CB)
    # The caller's own references may go away; the host keeps the thunk alive.
    gc.collect()
    assert h._callback_thunk is thunk
    # Calling the thunk as the library would (a C pp_event) reaches the Python callback.
    msg, details = b"viewer 7 joined", b'{"path":"direct","address":"127.0.0.1:5000"}'
    ev = _lib.Event(_lib.EventType.VIEWER_JOINED, _lib.LogLevel.INFO, 7, 0, msg, details)
    thunk(ctypes.byref(ev), None)
    assert len(received) == 1
    e = received[0]
    assert e.type == pixelpass.EventType.VIEWER_JOINED and e.viewer_id == 7
    assert e.error == Result.OK and e.message == "viewer 7 joined"
    assert e.json == {"path": "direct", "address": "127.0.0.1:5000"}
    # Released only once the host is freed (pp_host_free waits for in-flight callbacks).
    h.close()
    assert h._callback_thunk is None


def test_callback_exception_does_not_escape(capsys):
    def boom(event):
        raise RuntimeError("callback failed")
    h = Host(callback=boom)
    ev = _lib.Event(_lib.EventType.LOG, _lib.LogLevel.INFO, 0, 0, b"hello", b"{}")
    h._callback_thunk(ctypes.byref(ev), None)  # must not raise into "C"
    assert "callback failed" in capsys.readouterr().err
    h.close()


# ---- players ------------------------------------------------------------------------------------

def test_players_and_command():
    found = pixelpass.players()
    assert isinstance(found, list)
    for p in found:
        assert {"name", "path", "usable"} <= set(p)
    url = "http://127.0.0.1:40000/abcdef.ts"
    cmd = pixelpass.player_command(url, pixelpass.PlayerKind.MPV)
    assert "mpv" in cmd and url in cmd
    with pytest.raises(PixelpassError) as info:
        pixelpass.player_command(None)
    assert info.value.code == Result.INVALID_ARGUMENT


# ---- repair -------------------------------------------------------------------------------------

def test_repair_without_audio_server(monkeypatch, tmp_path):
    """With nothing to talk to, repair refuses (PP_ERR_IO) instead of reporting a system it never
    inspected; without PipeWire support in the build it is PP_ERR_UNSUPPORTED. The environment
    points at an empty directory so the result does not depend on the machine's session."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("PIPEWIRE_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/pulse/native")
    monkeypatch.delenv("PIPEWIRE_REMOTE", raising=False)
    if os.environ.get("PIXELPASS_HAVE_PIPEWIRE") == "1":
        with pytest.raises(PixelpassError) as info:
            pixelpass.repair(dry_run=True)
        assert info.value.code == Result.IO
        assert "no PipeWire/PulseAudio server reachable" in info.value.detail
    else:
        with pytest.raises(pixelpass.UnsupportedError) as info:
            pixelpass.repair(dry_run=True)
        assert info.value.code == Result.UNSUPPORTED
        assert "PipeWire" in info.value.detail


# ---- capture ------------------------------------------------------------------------------------

def test_forget_screen(monkeypatch, tmp_path):
    """forget_screen() deletes the portal restore token under $XDG_STATE_HOME/pixelpass, once."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    token = tmp_path / "pixelpass" / "screencast-restore-token"
    token.parent.mkdir()
    token.write_text("a-token\n")
    assert pixelpass.forget_screen() is True
    assert not token.exists()
    assert pixelpass.forget_screen() is False


# ---- relay set-up -------------------------------------------------------------------------------

def test_relay_secret_and_config():
    secret = pixelpass.relay_secret_new()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert pixelpass.relay_secret_new() != secret
    text = pixelpass.relay_config("relay.example.org", secret)
    assert "use-auth-secret" in text and f"static-auth-secret={secret}" in text
    assert f"--relay turn:relay.example.org:3478 --relay-secret {secret}" in text
    assert "listening-port=5349" in pixelpass.relay_config("relay.example.org", secret, 5349)
    with pytest.raises(PixelpassError) as e:
        pixelpass.relay_config("relay.example.org", "short")
    assert e.value.code == Result.INVALID_ARGUMENT


def test_dht_options_are_checked():
    """dht_bootstrap / no_dht reach the library: a malformed entry is refused with one line naming it
    (the host when it starts, the viewer when it connects); the rendezvous itself runs against real
    dhtnodes in tests/netsim/test_rendezvous.py."""
    with Host(source="synthetic", no_stun=True, no_port_mapping=True, dht_bootstrap=["dht.example:0"]) as h:
        with pytest.raises(PixelpassError) as info:
            h.start()
        assert info.value.code == Result.INVALID_ARGUMENT and "dht.example:0" in str(info.value)
    with Host(source="synthetic", bind_address="127.0.0.1", no_stun=True) as h:
        h.start()
        with pytest.raises(PixelpassError) as info:
            pixelpass.Viewer.connect(h.ticket(), no_stun=True, dht_bootstrap=["dht.example:0"])
        assert info.value.code == Result.INVALID_ARGUMENT and "DHT bootstrap" in str(info.value)
        with pixelpass.Viewer.connect(h.ticket(), no_stun=True, no_dht=True, dht_bootstrap=["dht.example:0"]) as v:
            assert v.stats()["found"] == "direct" and "rendezvous" not in v.stats()
