"""Low-level ctypes binding to libpixelpass: the C structs, one declarative table of functions,
the error mapping, and how the library is found and checked.

Everything here mirrors pixelpass.h; the friendly classes live in pixelpass/__init__.py. The
table FUNCTIONS is applied when the library is loaded: a function missing from the library fails
the load rather than the first call.
"""

import ctypes
import ctypes.util
import enum
import os
import threading

# The pixelpass major version (PIXELPASS_VERSION_MAJOR) this binding was written for. The layouts
# of the option structs and the function table below are those of that ABI (docs/ABI.md).
ABI_MAJOR = 0

# Option-struct versions this binding fills in (PP_*_OPTIONS_VERSION).
HOST_OPTIONS_VERSION = 4
VIEWER_OPTIONS_VERSION = 2
REPAIR_OPTIONS_VERSION = 1
DEMO_OPTIONS_VERSION = 3

FINGERPRINT_SIZE = 32
SECRET_MIN_SIZE = 16
SECRET_MAX_SIZE = 32


class Result(enum.IntEnum):
    """pp_result. Values are never renumbered (docs/ABI.md)."""
    OK = 0
    INVALID_ARGUMENT = -1
    NO_MEMORY = -2
    UNSUPPORTED = -3
    BUFFER_TOO_SMALL = -4
    STATE = -5
    VERSION = -6
    CRYPTO = -7
    IO = -8
    INTERNAL = -9
    TICKET_PREFIX = -20
    TICKET_VERSION = -21
    TICKET_TRUNCATED = -22
    TICKET_CHARACTER = -23
    TICKET_CHECKSUM = -24
    TICKET_EXPIRED = -25
    TICKET_MALFORMED = -26
    UNREACHABLE = -40
    HOST_KEY_MISMATCH = -41
    TICKET_REJECTED = -42
    HOST_FULL = -43
    CONNECTION_LOST = -44
    PROTOCOL = -45
    MEDIA = -60
    MISSING_PLUGIN = -61
    CAPTURE_CANCELLED = -62
    NO_CAPTURE_SOURCE = -63
    PLAYER = -64
    CONFIG = -80


class CandidateKind(enum.IntEnum):
    LOCAL = 0
    REFLEXIVE = 1
    MAPPED = 2
    RELAYED = 3


class PlayerKind(enum.IntEnum):
    AUTO = 0
    MPV = 1
    VLC = 2


class EventType(enum.IntEnum):
    LOG = 0
    READY = 1
    VIEWER_JOINED = 2
    VIEWER_LEFT = 3
    VIEWER_REFUSED = 4
    PATH_CHANGED = 5
    STATS = 6
    ERROR = 7
    STOPPED = 8


class LogLevel(enum.IntEnum):
    ERROR = 0
    WARNING = 1
    INFO = 2
    DEBUG = 3


# ---- errors -------------------------------------------------------------------------------------

class PixelpassError(Exception):
    """A pp_result other than PP_OK: .code (Result, or the raw int for a code newer than this
    binding), .name (pp_strerror) and .detail (pp_last_error at the time of the failure)."""

    def __init__(self, code, name, detail):
        try:
            code = Result(code)
        except ValueError:
            pass
        self.code = code
        self.name = name
        self.detail = detail
        super().__init__(f"{name}: {detail}" if detail else name)


class TicketError(PixelpassError):
    """The ticket text is damaged, expired or from a newer pixelpass (PP_ERR_TICKET_*)."""


class UnsupportedError(PixelpassError):
    """PP_ERR_UNSUPPORTED: the feature is not in this build or this version yet."""


class ConnectionFailed(PixelpassError):
    """Reaching or keeping the host failed (PP_ERR_UNREACHABLE .. PP_ERR_PROTOCOL)."""


class MediaError(PixelpassError):
    """Capture, the media pipeline or the player failed (PP_ERR_MEDIA .. PP_ERR_PLAYER)."""


class LibraryError(ImportError):
    """libpixelpass could not be loaded, or it is not the ABI this binding was written for."""


class VersionMismatch(LibraryError):
    """The library's major version is not ABI_MAJOR."""


def _error_class(code):
    if -26 <= code <= -20:
        return TicketError
    if code == Result.UNSUPPORTED:
        return UnsupportedError
    if -45 <= code <= -40:
        return ConnectionFailed
    if -79 <= code <= -60:
        return MediaError
    return PixelpassError


# ---- C types ------------------------------------------------------------------------------------

class pp_ticket(ctypes.Structure):
    """Opaque."""


class pp_host(ctypes.Structure):
    """Opaque."""


class pp_viewer(ctypes.Structure):
    """Opaque."""


class Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("level", ctypes.c_int),
        ("viewer_id", ctypes.c_uint64),
        ("error", ctypes.c_int),
        ("message", ctypes.c_char_p),
        ("json", ctypes.c_char_p),
    ]


class HostOptions(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("source", ctypes.c_char_p),
        ("bind_address", ctypes.c_char_p),
        ("port", ctypes.c_uint16),
        ("max_viewers", ctypes.c_uint),
        ("bitrate_kbps", ctypes.c_uint),
        ("fps", ctypes.c_uint),
        ("max_height", ctypes.c_uint),
        ("encoder", ctypes.c_char_p),
        ("audio", ctypes.c_int),
        ("apps", ctypes.POINTER(ctypes.c_char_p)),
        ("app_count", ctypes.c_size_t),
        ("monitor", ctypes.c_int),
        ("relay", ctypes.c_char_p),
        ("relay_username", ctypes.c_char_p),
        ("relay_password", ctypes.c_char_p),
        ("relay_secret", ctypes.c_char_p),
        ("stun_servers", ctypes.POINTER(ctypes.c_char_p)),
        ("stun_server_count", ctypes.c_size_t),
        ("no_stun", ctypes.c_int),
        ("no_port_mapping", ctypes.c_int),
        ("relay_only", ctypes.c_int),
        ("no_relay", ctypes.c_int),
        ("ticket_lifetime_s", ctypes.c_int64),
        ("grace_ms", ctypes.c_uint),
        ("name", ctypes.c_char_p),
        ("dht_bootstrap", ctypes.POINTER(ctypes.c_char_p)),  # version 2
        ("dht_bootstrap_count", ctypes.c_size_t),
        ("no_dht", ctypes.c_int),
        ("congestion_control", ctypes.c_char_p),
        ("fixed_bitrate", ctypes.c_int),
        ("publish", ctypes.POINTER(ctypes.c_char_p)),
        ("publish_count", ctypes.c_size_t),
        ("publish_key", ctypes.c_char_p),
        ("one_viewer", ctypes.c_int),  # version 3
        ("max_streams_per_viewer", ctypes.c_uint),  # version 4
    ]


class ViewerOptions(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("ticket", ctypes.c_char_p),
        ("listen_port", ctypes.c_uint16),
        ("connect_timeout_ms", ctypes.c_uint),
        ("relay_only", ctypes.c_int),
        ("no_relay", ctypes.c_int),
        ("stun_servers", ctypes.POINTER(ctypes.c_char_p)),
        ("stun_server_count", ctypes.c_size_t),
        ("no_stun", ctypes.c_int),
        ("dht_bootstrap", ctypes.POINTER(ctypes.c_char_p)),
        ("dht_bootstrap_count", ctypes.c_size_t),
        ("no_dht", ctypes.c_int),
    ]


class RepairOptions(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("dry_run", ctypes.c_int),
    ]


class DemoOptions(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("seconds", ctypes.c_double),
        ("headless", ctypes.c_int),
        ("encoder", ctypes.c_char_p),
        ("bitrate_kbps", ctypes.c_uint),
        ("fps", ctypes.c_uint),
        ("max_height", ctypes.c_uint),
        ("audio", ctypes.c_int),
        # version 2
        ("publish", ctypes.POINTER(ctypes.c_char_p)),
        ("publish_count", ctypes.c_size_t),
        ("publish_key", ctypes.c_char_p),
        # version 3
        ("dht_bootstrap", ctypes.POINTER(ctypes.c_char_p)),
        ("dht_bootstrap_count", ctypes.c_size_t),
        ("no_dht", ctypes.c_int),
    ]


# void (*pp_event_cb)(const pp_event *event, void *user_data)
EVENT_CB = ctypes.CFUNCTYPE(None, ctypes.POINTER(Event), ctypes.c_void_p)
PROGRESS_CB = ctypes.CFUNCTYPE(None, ctypes.c_double, ctypes.c_double, ctypes.c_void_p)

_size_p = ctypes.POINTER(ctypes.c_size_t)
_ticket_p = ctypes.POINTER(pp_ticket)
_host_p = ctypes.POINTER(pp_host)
_viewer_p = ctypes.POINTER(pp_viewer)
# Byte buffers in and out: c_char_p accepts bytes, a create_string_buffer() array, or None.
_buf = ctypes.c_char_p
_str = ctypes.c_char_p

# ---- the function table -------------------------------------------------------------------------
#
# (name, argtypes, restype, errcheck). errcheck names one of the checks in _Checks:
#   "ok"      any result other than PP_OK raises
#   "sized"   a string/bytes getter: PP_ERR_BUFFER_TOO_SMALL is returned (it answers a size query)
#   "wait"    pp_viewer_wait: PP_ERR_STATE ("still connected") is returned, not raised
#   None      the function does not return a pp_result

FUNCTIONS = [
    ("pp_strerror", [ctypes.c_int], ctypes.c_char_p, None),
    ("pp_last_error", [], ctypes.c_char_p, None),
    ("pp_version", [], ctypes.c_char_p, None),
    ("pp_version_number", [], ctypes.c_uint32, None),

    ("pp_ticket_new", [ctypes.POINTER(_ticket_p), _buf, _buf, ctypes.c_size_t], ctypes.c_int, "ok"),
    ("pp_ticket_add_candidate", [_ticket_p, ctypes.c_int, _str, ctypes.c_uint16], ctypes.c_int, "ok"),
    ("pp_ticket_set_relay", [_ticket_p, _str, ctypes.c_uint16, _str, _str], ctypes.c_int, "ok"),
    ("pp_ticket_set_expiry", [_ticket_p, ctypes.c_int64], ctypes.c_int, "ok"),
    ("pp_ticket_encode", [_ticket_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_ticket_decode", [ctypes.POINTER(_ticket_p), _str], ctypes.c_int, "ok"),
    ("pp_ticket_fingerprint", [_ticket_p, _buf], ctypes.c_int, "ok"),
    ("pp_ticket_secret", [_ticket_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_ticket_candidate_count", [_ticket_p], ctypes.c_size_t, None),
    ("pp_ticket_candidate", [_ticket_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int),
                             ctypes.POINTER(ctypes.c_uint16), _buf, ctypes.c_size_t, _size_p],
     ctypes.c_int, "sized"),
    ("pp_ticket_expiry", [_ticket_p], ctypes.c_int64, None),
    ("pp_ticket_to_json", [_ticket_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_ticket_free", [_ticket_p], None, None),

    ("pp_host_options_init", [ctypes.POINTER(HostOptions), ctypes.c_uint], ctypes.c_int, "ok"),
    ("pp_host_new", [ctypes.POINTER(_host_p), ctypes.POINTER(HostOptions), EVENT_CB,
                     ctypes.c_void_p], ctypes.c_int, "ok"),
    ("pp_host_start", [_host_p], ctypes.c_int, "ok"),
    ("pp_host_stop", [_host_p], ctypes.c_int, "ok"),
    ("pp_host_ticket", [_host_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_host_fingerprint", [_host_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_host_stats_json", [_host_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_host_free", [_host_p], None, None),

    ("pp_viewer_options_init", [ctypes.POINTER(ViewerOptions), ctypes.c_uint], ctypes.c_int, "ok"),
    ("pp_viewer_connect", [ctypes.POINTER(_viewer_p), ctypes.POINTER(ViewerOptions), EVENT_CB,
                           ctypes.c_void_p], ctypes.c_int, "ok"),
    ("pp_viewer_url", [_viewer_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_viewer_stats_json", [_viewer_p, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_viewer_wait", [_viewer_p, ctypes.c_int], ctypes.c_int, "wait"),
    ("pp_viewer_free", [_viewer_p], None, None),

    ("pp_players_json", [_buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_player_command", [ctypes.c_int, _str, _buf, ctypes.c_size_t, _size_p], ctypes.c_int,
     "sized"),
    ("pp_player_launch", [ctypes.c_int, _str, ctypes.POINTER(ctypes.c_int64)], ctypes.c_int, "ok"),

    ("pp_repair", [ctypes.POINTER(RepairOptions), _buf, ctypes.c_size_t, _size_p], ctypes.c_int,
     "sized"),

    ("pp_demo_options_init", [ctypes.POINTER(DemoOptions), ctypes.c_uint], ctypes.c_int, "ok"),
    ("pp_demo_run", [ctypes.POINTER(DemoOptions), EVENT_CB, ctypes.c_void_p, _buf, ctypes.c_size_t,
                     _size_p], ctypes.c_int, "sized"),
    ("pp_config_path", [_buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_config_json", [_buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_config_set", [_str, _str], ctypes.c_int, "ok"),
    ("pp_bandwidth_test", [_str, PROGRESS_CB, ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)],
     ctypes.c_int, "ok"),
    ("pp_bandwidth_skip", [], ctypes.c_int, "ok"),
    ("pp_clipboard_copy", [_str, ctypes.c_int, _buf, ctypes.c_size_t, _size_p], ctypes.c_int,
     "sized"),
    ("pp_doctor_json", [ctypes.c_uint, _buf, ctypes.c_size_t, _size_p], ctypes.c_int, "sized"),
    ("pp_forget_screen", [ctypes.POINTER(ctypes.c_int)], ctypes.c_int, "ok"),
    ("pp_relay_secret_new", [_buf, ctypes.c_size_t], ctypes.c_int, "ok"),
    ("pp_relay_config", [_str, _str, ctypes.c_uint16, _buf, ctypes.c_size_t, _size_p], ctypes.c_int,
     "sized"),
]

RELAY_SECRET_BUFFER = 65  # PP_RELAY_SECRET_BUFFER


class _Checks:
    """The errcheck functions for one loaded library. They read pp_last_error() right after the
    failing call, on the same thread, before any other pixelpass call can replace it."""

    def __init__(self, cdll):
        # Raw handles, outside the table, so that building an error never recurses.
        self._strerror = cdll.pp_strerror
        self._strerror.argtypes = [ctypes.c_int]
        self._strerror.restype = ctypes.c_char_p
        self._last_error = cdll.pp_last_error
        self._last_error.argtypes = []
        self._last_error.restype = ctypes.c_char_p

    def error(self, code):
        detail = (self._last_error() or b"").decode("utf-8", "replace")
        name = (self._strerror(code) or b"").decode("utf-8", "replace")
        return _error_class(code)(code, name, detail)

    def ok(self, result, func, args):
        if result != Result.OK:
            raise self.error(result)
        return result

    def sized(self, result, func, args):
        if result not in (Result.OK, Result.BUFFER_TOO_SMALL):
            raise self.error(result)
        return result

    def wait(self, result, func, args):
        if result not in (Result.OK, Result.STATE):
            raise self.error(result)
        return result


def _apply_table(cdll, path):
    checks = _Checks(cdll)
    for name, argtypes, restype, errcheck in FUNCTIONS:
        try:
            func = getattr(cdll, name)
        except AttributeError:
            raise LibraryError(f"{path} has no {name}: it is older than this binding") from None
        func.argtypes = argtypes
        func.restype = restype
        if errcheck is not None:
            func.errcheck = getattr(checks, errcheck)
    cdll.checks = checks
    return cdll


# ---- finding and loading the library ------------------------------------------------------------

_lock = threading.Lock()
_explicit_path = None
_loaded = None


def set_library_path(path):
    """Use `path` for libpixelpass instead of PIXELPASS_LIBRARY or the system search. Must be
    called before the first use of the library."""
    global _explicit_path
    with _lock:
        if _loaded is not None and os.fspath(path) != _loaded._name:
            raise LibraryError(f"libpixelpass is already loaded from {_loaded._name}")
        _explicit_path = os.fspath(path)


def library_path():
    """Where the library is looked for: set_library_path(), then the PIXELPASS_LIBRARY
    environment variable, then the system's search (ctypes.util.find_library), then the soname."""
    if _explicit_path:
        return _explicit_path
    env = os.environ.get("PIXELPASS_LIBRARY")
    if env:
        return env
    return ctypes.util.find_library("pixelpass") or f"libpixelpass.so.{ABI_MAJOR}"


def load(path=None, expected_major=ABI_MAJOR):
    """Loads libpixelpass from `path` (default: library_path()), applies FUNCTIONS and checks the
    major version. Raises LibraryError / VersionMismatch. Each call returns a new CDLL object
    (the shared object itself is loaded once by the dynamic linker)."""
    path = path or library_path()
    try:
        cdll = ctypes.CDLL(path)
    except OSError as e:
        raise LibraryError(f"cannot load libpixelpass from {path!r}: {e} "
                           "(set PIXELPASS_LIBRARY to the library's path)") from None
    _apply_table(cdll, path)
    number = cdll.pp_version_number()
    major = number >> 16
    if major != expected_major:
        version = cdll.pp_version().decode()
        raise VersionMismatch(f"{path} is pixelpass {version} (ABI {major}); this binding was "
                              f"written for ABI {expected_major}")
    return cdll


def lib():
    """The process-wide library, loaded on first use."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = load()
    return _loaded
