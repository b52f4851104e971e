"""pixelpass: peer-to-peer screen sharing — Python binding over libpixelpass's C API (ctypes).

    import pixelpass
    with pixelpass.Host(source="synthetic", bind_address="127.0.0.1") as host:
        host.start()
        print(host.ticket())

    ticket = pixelpass.Ticket.decode(text)      # pasted text; damage raises TicketError
    print(ticket.fingerprint.hex(), ticket.candidates, ticket.to_json())

Every failure raises PixelpassError (or a subclass) carrying .code (a Result), .name and the
library's .detail. The library is found through set_library_path(), then the PIXELPASS_LIBRARY
environment variable, then the system search; it is loaded, and its version checked, on first use.

Threading: event callbacks run on the library's network thread (see pixelpass.h); keep them short.
"""

import ctypes
import json
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

from . import _lib
from ._lib import (
    ABI_MAJOR,
    CandidateKind,
    ConnectionFailed,
    EventType,
    LibraryError,
    LogLevel,
    MediaError,
    PixelpassError,
    PlayerKind,
    Result,
    TicketError,
    UnsupportedError,
    VersionMismatch,
    library_path,
    set_library_path,
)

__all__ = [
    "ABI_MAJOR", "Candidate", "CandidateKind", "ConnectionFailed", "Event", "EventType", "Host",
    "LibraryError", "LogLevel", "MediaError", "PixelpassError", "PlayerKind", "Result", "Ticket",
    "TicketError", "UnsupportedError", "VersionMismatch", "Viewer", "demo", "launch_player", "library_path",
    "player_command", "players", "repair", "set_library_path", "strerror", "version",
    "version_info", "config", "config_path", "config_set", "bandwidth_test", "bandwidth_skip",
    "clipboard_copy", "doctor", "forget_screen", "relay_config", "relay_secret_new",
]


def _c():
    return _lib.lib()


def version() -> str:
    """The running library's version, e.g. "0.1.0"."""
    return _c().pp_version().decode()


def version_info() -> tuple:
    """(major, minor, patch) of the running library."""
    n = _c().pp_version_number()
    return (n >> 16, (n >> 8) & 0xFF, n & 0xFF)


def strerror(code: int) -> str:
    """The library's short name for a result code."""
    return _c().pp_strerror(int(code)).decode()


# ---- the buffer convention, in one place --------------------------------------------------------

def _get_bytes(func, *args) -> bytes:
    """Calls a getter following pixelpass.h's (buf, buf_size, *needed) convention: asks for the
    size, then fetches, again if the value grew in between (statistics can). The bytes returned
    exclude the terminating NUL for strings; see _get_string."""
    needed = ctypes.c_size_t(0)
    size = 0
    buf = None
    while True:
        rc = func(*args, buf, size, ctypes.byref(needed))
        if rc == Result.OK:
            return buf.raw[:needed.value] if buf is not None else b""
        if buf is not None and needed.value <= size:  # would loop forever: a library bug
            raise PixelpassError(Result.INTERNAL, "internal error",
                                 f"{func.__name__} asked for {needed.value} bytes but refused {size}")
        size = needed.value
        buf = ctypes.create_string_buffer(size)


def _get_string(func, *args) -> str:
    raw = _get_bytes(func, *args)
    return raw[:-1].decode("utf-8") if raw.endswith(b"\0") else raw.decode("utf-8")


def _to_bytes(value) -> Optional[bytes]:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"expected str, bytes or None, not {type(value).__name__}")


class _Closeable:
    """An owner of a library handle (self._handle, freed by close()): a context manager that closes
    on exit, and closed when collected, unless the library is already unloaded (interpreter
    shutdown)."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None) and _lib is not None and _lib._loaded is not None:
            self.close()


# ---- tickets ------------------------------------------------------------------------------------

class Candidate(NamedTuple):
    kind: CandidateKind
    address: str
    port: int


class Ticket(_Closeable):
    """A pixelpass ticket: the host key fingerprint it pins, the access secret, candidate
    addresses, an optional relay and an optional expiry. Build one with Ticket.new() or
    Ticket.decode(); str(ticket) is its text."""

    __slots__ = ("_handle",)

    def __init__(self, handle):
        """Internal: use Ticket.new() or Ticket.decode()."""
        self._handle = handle

    @classmethod
    def new(cls, fingerprint: bytes, secret: bytes) -> "Ticket":
        fingerprint = bytes(fingerprint)
        secret = bytes(secret)
        if len(fingerprint) != _lib.FINGERPRINT_SIZE:
            # The C function reads exactly 32 bytes: never hand it fewer.
            raise ValueError(f"fingerprint must be {_lib.FINGERPRINT_SIZE} bytes, not {len(fingerprint)}")
        handle = ctypes.POINTER(_lib.pp_ticket)()
        _c().pp_ticket_new(ctypes.byref(handle), fingerprint, secret, len(secret))
        return cls(handle)

    @classmethod
    def decode(cls, text: str) -> "Ticket":
        """Parses pasted text (spaces, line breaks, <>, quotes and case do not matter). Raises
        TicketError with .code one of Result.TICKET_* and a .detail saying where."""
        handle = ctypes.POINTER(_lib.pp_ticket)()
        _c().pp_ticket_decode(ctypes.byref(handle), _to_bytes(text))
        return cls(handle)

    def _h(self):
        if not self._handle:
            raise ValueError("ticket is closed")
        return self._handle

    def add_candidate(self, address: str, port: int, kind=CandidateKind.LOCAL) -> "Ticket":
        _c().pp_ticket_add_candidate(self._h(), int(kind), _to_bytes(address), port)
        return self

    def set_relay(self, host: Optional[str], port: int = 3478, username: Optional[str] = None,
                  credential: Optional[str] = None) -> "Ticket":
        """Sets the TURN relay; host=None clears it."""
        _c().pp_ticket_set_relay(self._h(), _to_bytes(host), port, _to_bytes(username),
                                 _to_bytes(credential))
        return self

    @property
    def relay(self) -> Optional[dict]:
        """host, port, username and a short hash of the credential, or None."""
        return self.to_json().get("relay")

    @property
    def one_viewer(self) -> bool:
        """True when the host admits one viewer with this ticket (it refuses any other)."""
        return bool(self.to_json().get("one_viewer", False))

    @property
    def expiry(self) -> int:
        """Unix seconds; 0 when the ticket never expires."""
        return _c().pp_ticket_expiry(self._h())

    @expiry.setter
    def expiry(self, unix_seconds: int):
        _c().pp_ticket_set_expiry(self._h(), int(unix_seconds))

    @property
    def fingerprint(self) -> bytes:
        out = ctypes.create_string_buffer(_lib.FINGERPRINT_SIZE)
        _c().pp_ticket_fingerprint(self._h(), out)
        return out.raw

    @property
    def secret(self) -> bytes:
        return _get_bytes(_c().pp_ticket_secret, self._h())

    @property
    def candidates(self) -> list:
        c = _c()
        out = []
        for i in range(c.pp_ticket_candidate_count(self._h())):
            kind = ctypes.c_int()
            port = ctypes.c_uint16()
            address = _get_string(c.pp_ticket_candidate, self._h(), i, ctypes.byref(kind),
                                  ctypes.byref(port))
            out.append(Candidate(CandidateKind(kind.value), address, port.value))
        return out

    def encode(self) -> str:
        return _get_string(_c().pp_ticket_encode, self._h())

    def to_json(self) -> dict:
        """The inspect view: fingerprint, candidates, relay, expiry, length; the secret and the
        relay credential only as short hashes."""
        return json.loads(_get_string(_c().pp_ticket_to_json, self._h()))

    def close(self):
        if self._handle:
            _c().pp_ticket_free(self._handle)
            self._handle = None

    def __str__(self):
        return self.encode()

    def __repr__(self):  # never the secret
        if not self._handle:
            return "<Ticket closed>"
        return (f"<Ticket fingerprint={self.fingerprint.hex()[:16]}… "
                f"candidates={len(self.candidates)} expiry={self.expiry}>")

    def __eq__(self, other):
        return isinstance(other, Ticket) and self.encode() == other.encode()

    def __hash__(self):
        return hash(self.encode())


# ---- events -------------------------------------------------------------------------------------

@dataclass
class Event:
    type: EventType
    level: LogLevel
    viewer_id: int
    error: Any  # Result, or the raw int for a code newer than this binding
    message: str
    json: dict = field(default_factory=dict)

    @classmethod
    def from_c(cls, ev: "_lib.Event") -> "Event":
        def enum_or_int(enum, value):
            try:
                return enum(value)
            except ValueError:
                return value
        details = {}
        if ev.json:
            try:
                details = json.loads(ev.json.decode("utf-8", "replace"))
            except ValueError:
                details = {"raw": ev.json.decode("utf-8", "replace")}
        return cls(enum_or_int(EventType, ev.type), enum_or_int(LogLevel, ev.level),
                   ev.viewer_id, enum_or_int(Result, ev.error),
                   (ev.message or b"").decode("utf-8", "replace"), details)


def _trampoline(callback: Callable[[Event], None]):
    """A CFUNCTYPE calling `callback(Event)`. The caller must keep the returned object alive for
    as long as the library may call it: ctypes frees the C thunk with the Python object, and a
    call into a freed thunk crashes the process."""
    def invoke(event_p, _user_data):
        try:
            callback(Event.from_c(event_p.contents))
        except BaseException:  # an exception cannot cross into C: report it and carry on
            traceback.print_exc(file=sys.stderr)
    return _lib.EVENT_CB(invoke)


# A NULL pp_event_cb: ctypes wants an instance of the CFUNCTYPE, not None.
_NO_CALLBACK = _lib.EVENT_CB()


def _string_array(items):
    """(array, count) for a `const char *const *` + count pair; the array keeps its bytes."""
    if items is None:
        return None, 0
    if isinstance(items, (str, bytes)):
        raise TypeError("expected a list of strings, not a single string")
    encoded = [_to_bytes(s) for s in items]
    array = (ctypes.c_char_p * len(encoded))(*encoded)
    return ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p)), len(encoded)


def _fill_options(struct, options: dict, lists: dict):
    """Maps keyword arguments onto a C options struct already filled with the library's defaults.
    `lists` maps a list argument to the name of its count field. Returns the objects the struct
    points into (the caller keeps them until the library has copied the options)."""
    names = {name for name, _ in struct._fields_} - {"version"} - set(lists.values())
    keep = []
    for key, value in options.items():
        if key in lists:
            array, count = _string_array(value)
            keep.append(array)
            setattr(struct, key, array)
            setattr(struct, lists[key], count)
        elif key in names:
            ctype = dict(struct._fields_)[key]
            if ctype is ctypes.c_char_p:
                value = _to_bytes(value)
                keep.append(value)
            elif isinstance(value, bool):
                value = int(value)
            setattr(struct, key, value)
        else:
            valid = ", ".join(sorted(names | set(lists)))
            raise TypeError(f"unknown option {key!r}; valid options: {valid}")
    return keep


# ---- host ---------------------------------------------------------------------------------------

class _Owned(_Closeable):
    """A library handle with a callback: close() frees it (pp_<kind>_free waits for an in-flight
    callback, so the thunk is released only after), and so do `with` and garbage collection."""

    _KIND = ""  # "host" or "viewer": names pp_<kind>_free and the closed error

    def _h(self):
        if not self._handle:
            raise ValueError(f"{self._KIND} is closed")
        return self._handle

    def close(self):
        if self._handle:
            getattr(_c(), f"pp_{self._KIND}_free")(self._handle)
            self._handle = None
        self._callback_thunk = None


class Host(_Owned):
    """A sharing session: a fresh key pair and access secret, served once started.

    Options are pp_host_options' fields as keyword arguments (source="synthetic",
    bind_address="127.0.0.1", port=0, max_viewers, bitrate_kbps, fps, max_height, encoder,
    audio=True, apps=[...], monitor, relay, relay_username, relay_password, relay_secret,
    stun_servers=[...], no_stun, no_port_mapping, relay_only, no_relay, ticket_lifetime_s,
    grace_ms, name, dht_bootstrap=[...], no_dht, congestion_control="cubic"|"bbr"|"bbr2"|"reno",
    fixed_bitrate, publish=["rtmp://...", "srt://..."], publish_key, one_viewer,
    max_streams_per_viewer). `callback(Event)` runs on
    the library's network thread. stats()["publish"] lists each media server's state.
    As a context manager it closes (stops and frees) the host on exit."""

    _KIND = "host"
    _LISTS = {"apps": "app_count", "stun_servers": "stun_server_count", "dht_bootstrap": "dht_bootstrap_count",
              "publish": "publish_count"}

    def __init__(self, callback: Optional[Callable[[Event], None]] = None, **options):
        c = _c()
        opts = _lib.HostOptions()
        c.pp_host_options_init(ctypes.byref(opts), _lib.HOST_OPTIONS_VERSION)
        keep = _fill_options(opts, options, self._LISTS)
        thunk = _trampoline(callback) if callback is not None else None
        handle = ctypes.POINTER(_lib.pp_host)()
        c.pp_host_new(ctypes.byref(handle), ctypes.byref(opts), thunk or _NO_CALLBACK, None)
        del keep  # copied by pp_host_new
        self._handle = handle
        # Referenced for as long as the host can call it: released only after pp_host_free,
        # which waits for an in-flight callback to return.
        self._callback_thunk = thunk

    def start(self) -> "Host":
        _c().pp_host_start(self._h())
        return self

    def stop(self):
        _c().pp_host_stop(self._h())

    def ticket(self) -> str:
        return _get_string(_c().pp_host_ticket, self._h())

    @property
    def fingerprint(self) -> str:
        """The host key fingerprint, 64 lowercase hex characters."""
        return _get_string(_c().pp_host_fingerprint, self._h())

    def stats(self) -> dict:
        return json.loads(_get_string(_c().pp_host_stats_json, self._h()))



# ---- viewer -------------------------------------------------------------------------------------

class Viewer(_Owned):
    """A connection to a host. Viewer.connect() blocks until connected or failed; the stream is
    then served to players at .url. As a context manager it disconnects on exit."""

    _KIND = "viewer"
    _LISTS = {"stun_servers": "stun_server_count", "dht_bootstrap": "dht_bootstrap_count"}

    def __init__(self, handle, thunk):
        """Internal: use Viewer.connect()."""
        self._handle = handle
        self._callback_thunk = thunk

    @classmethod
    def connect(cls, ticket, callback: Optional[Callable[[Event], None]] = None,
                **options) -> "Viewer":
        """`ticket` is the pasted text or a Ticket. Options are pp_viewer_options' fields:
        listen_port, connect_timeout_ms, relay_only, no_relay, stun_servers=[...], no_stun,
        dht_bootstrap=[...], no_dht."""
        if "ticket" in options:
            raise TypeError("pass the ticket as the first argument")
        c = _c()
        opts = _lib.ViewerOptions()
        c.pp_viewer_options_init(ctypes.byref(opts), _lib.VIEWER_OPTIONS_VERSION)
        text = _to_bytes(ticket.encode() if isinstance(ticket, Ticket) else ticket)
        if text is None:
            raise TypeError("a ticket is required")
        opts.ticket = text
        keep = _fill_options(opts, options, cls._LISTS)
        thunk = _trampoline(callback) if callback is not None else None
        handle = ctypes.POINTER(_lib.pp_viewer)()
        c.pp_viewer_connect(ctypes.byref(handle), ctypes.byref(opts), thunk or _NO_CALLBACK, None)
        del keep, text
        return cls(handle, thunk)

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>/<random>.ts — give it to mpv or VLC."""
        return _get_string(_c().pp_viewer_url, self._h())

    def stats(self) -> dict:
        """Path, RTT, bytes, local clients; "path_too_poor" and "link" (the host's verdict on this
        viewer's path while a stream runs: too_poor, reason, receive_kbps, bitrate_kbps,
        floor_kbps, max_kbps, adaptive, measured, reports)."""
        return json.loads(_get_string(_c().pp_viewer_stats_json, self._h()))

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits up to `timeout` seconds (None: forever) for the connection to end. True when it
        ended cleanly, False when it is still up; raises PixelpassError when it was lost."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        return _c().pp_viewer_wait(self._h(), ms) == Result.OK



# ---- players ------------------------------------------------------------------------------------

def players() -> list:
    """The installed players, best first: [{name, path, usable, problem}, ...]."""
    return json.loads(_get_string(_c().pp_players_json))


def player_command(url: str, player=PlayerKind.AUTO) -> str:
    """The shell command line that plays `url` with low-latency flags.

    For mpv this also writes the live-edge script the command loads (see pp_player_command in
    pixelpass.h: $XDG_RUNTIME_DIR/pixelpass/pixelpass-live.lua or ~/.cache/pixelpass/, mode 0600).
    """
    return _get_string(_c().pp_player_command, int(player), _to_bytes(url))


def launch_player(url: str, player=PlayerKind.AUTO) -> int:
    """Starts the player on `url`, detached; returns its process id."""
    pid = ctypes.c_int64(0)
    _c().pp_player_launch(int(player), _to_bytes(url), ctypes.byref(pid))
    return pid.value


# ---- repair -------------------------------------------------------------------------------------

def repair(dry_run: bool = False) -> dict:
    """Removes audio-routing objects left by pixelpass processes that died (only reports them
    with dry_run). Returns the report: removed, skipped, failed."""
    opts = _lib.RepairOptions(_lib.REPAIR_OPTIONS_VERSION, int(bool(dry_run)))
    return json.loads(_get_string(_c().pp_repair, ctypes.byref(opts)))


# ---- demo ---------------------------------------------------------------------------------------

def demo(callback: Optional[Callable[[Event], None]] = None, **options) -> dict:
    """Hosts the test source and views it over QUIC on loopback in this process (mpv with a
    display unless headless=True; otherwise a headless decode for `seconds`). Returns the report:
    frames_decoded, width, height, fps, bitrate_kbps, time_to_first_frame_ms, latency_ms, path, ...
    Options: seconds, headless, encoder, bitrate_kbps, fps, max_height, audio,
    publish=[URL, ...], publish_key, dht_bootstrap=["HOST:PORT", ...] (the demo's loopback host
    joins these DHT nodes and its viewer leaves its sealed offer there: report["rendezvous"] says
    what arrived; the public DHT is never used), no_dht."""
    opts = _lib.DemoOptions()
    _c().pp_demo_options_init(ctypes.byref(opts), _lib.DEMO_OPTIONS_VERSION)
    keep = _fill_options(opts, options, {"publish": "publish_count", "dht_bootstrap": "dht_bootstrap_count"})
    thunk = _trampoline(callback) if callback else _NO_CALLBACK
    report = _get_string(_c().pp_demo_run, ctypes.byref(opts), thunk, None)
    del keep
    return json.loads(report)


# ---- config, bandwidth pre-flight, clipboard, doctor --------------------------------------------

def config_path() -> str:
    """Where the config file lives: $XDG_CONFIG_HOME/pixelpass/config.toml (else ~/.config/...)."""
    return _get_string(_c().pp_config_path)


def config() -> dict:
    """The effective config: host, network, bandwidth, warnings, default_max_viewers. A broken
    file raises PixelpassError (Result.CONFIG) naming line and column."""
    return json.loads(_get_string(_c().pp_config_json))


def config_set(key: str, value) -> None:
    """Sets "table.key" to `value` in the config file (only that value's text changes)."""
    _c().pp_config_set(_to_bytes(key), json.dumps(value).encode())


def bandwidth_test(endpoint: Optional[str] = None,
                   progress: Optional[Callable[[float, float], None]] = None) -> float:
    """Measures upstream bandwidth with an HTTP upload to `endpoint` (None: the configured one)
    and records it in the config. Returns the safe estimate in Mbit/s; a failure raises (and is
    recorded as status "failed"). Ask the user first: this sends ~5 MB to a third party."""
    def call(fraction, mbps, _user):
        try:
            progress(fraction, mbps)
        except Exception:  # never unwind through C
            traceback.print_exc()
    thunk = _lib.PROGRESS_CB(call) if progress else _lib.PROGRESS_CB()
    mbps = ctypes.c_double(0)
    _c().pp_bandwidth_test(_to_bytes(endpoint), thunk, None, ctypes.byref(mbps))
    return mbps.value


def bandwidth_skip() -> None:
    """Records that the user declined the bandwidth test; it is not offered again."""
    _c().pp_bandwidth_skip()


def clipboard_copy(text: str, tty_fd: int = -1) -> str:
    """Copies text to the clipboard; returns the method ("wl-copy", "xclip", "xsel", "osc52")."""
    return _get_string(_c().pp_clipboard_copy, _to_bytes(text), int(tty_fd))


def doctor(probe_timeout_ms: int = 0) -> dict:
    """The health checks: {checks: [{name, status, detail, fix}], can_share, can_view}."""
    return json.loads(_get_string(_c().pp_doctor_json, int(probe_timeout_ms)))


# ---- capture ------------------------------------------------------------------------------------

def forget_screen() -> bool:
    """Forgets the screen chosen in the Wayland share dialog (the portal's restore token), so the
    next portal share asks again. True when a choice was stored."""
    forgotten = ctypes.c_int(0)
    _c().pp_forget_screen(ctypes.byref(forgotten))
    return bool(forgotten.value)


# ---- relay set-up -------------------------------------------------------------------------------

def relay_secret_new() -> str:
    """A fresh random coturn static-auth-secret (64 hex characters)."""
    buf = ctypes.create_string_buffer(_lib.RELAY_SECRET_BUFFER)
    _c().pp_relay_secret_new(buf, len(buf))
    return buf.value.decode()


def relay_config(public_host: str, secret: str, port: int = 3478) -> str:
    """turnserver.conf text for a pixelpass relay at `public_host`, ending with the matching
    `pixelpass host --relay ... --relay-secret ...` line (docs/relay.md)."""
    return _get_string(_c().pp_relay_config, _to_bytes(public_host), _to_bytes(secret), int(port))
