/*
 * pixelpass.h — the public C ABI of libpixelpass: peer-to-peer screen sharing.
 *
 * A host shares a screen and hands out a one-line ticket; a viewer holding the ticket reaches the
 * host over an encrypted QUIC connection and serves the stream to a local player on 127.0.0.1.
 *
 * ABI policy (docs/ABI.md): symbols are only added, never changed or removed, within one soversion;
 * pp_result values are never renumbered; option structs are versioned (first field `version`).
 *
 * Conventions
 *  - Objects are opaque handles: pp_<object>_new(&out, ...) creates, pp_<object>_free() destroys,
 *    and pp_<object>_free(NULL) is a no-op.
 *  - Output parameters come first; a callback and its `void *user_data` come last.
 *  - Every fallible function returns a pp_result: PP_OK (0) or a negative code. pp_strerror(code)
 *    names the code; pp_last_error() gives the human detail of the last failure on this thread.
 *  - String getters take (char *buf, size_t buf_size, size_t *needed): they write a NUL-terminated
 *    string when it fits, always store the size needed (including the NUL) in *needed when `needed`
 *    is not NULL, and return PP_ERR_BUFFER_TOO_SMALL when it does not fit. buf may be NULL when
 *    buf_size is 0, to ask for the size. A live value (statistics) can grow between the call that
 *    asks and the one that fetches: call again with the new size while it returns TOO_SMALL.
 *
 * Threading contract
 *  - Each pp_host and pp_viewer runs its own network loop on a thread owned by the library.
 *    Event callbacks run on that loop thread, one at a time per object. Keep them short: the
 *    object's network traffic waits while a callback runs.
 *  - Functions on one object may be called from any thread; the library serialises them.
 *    Functions on different objects never interfere. Ticket objects are plain values: not
 *    synchronised, safe to use from one thread at a time.
 *  - pp_host_free()/pp_viewer_free() stop the loop and wait for an in-flight callback to return;
 *    after they return no callback of that object runs again. Called from inside that object's own
 *    callback, free does not wait for itself: it marks the object and the loop thread releases it
 *    once the callback returns.
 *  - pp_last_error() is thread-local: it reports the last failure of a call made on this thread.
 *  - Strings passed in are copied; the caller keeps ownership. Strings in an event are valid only
 *    for the duration of the callback.
 *
 * Security: the ticket is the only credential. Its secret is never logged and never appears in
 * JSON produced by this library (only a short hash of it does).
 */
#ifndef PIXELPASS_H
#define PIXELPASS_H

#include <stddef.h>
#include <stdint.h>

#include "pixelpass_version.h"

#if defined(BUILDING_PIXELPASS)
#define PP_EXPORT __attribute__((visibility("default")))
#else
#define PP_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Results and errors
 * ------------------------------------------------------------------------------------------- */

/** Result codes. Never renumbered; new codes are only appended. */
typedef enum pp_result {
    PP_OK = 0,
    PP_ERR_INVALID_ARGUMENT = -1,   /**< a NULL handle, a bad option value, an unknown name */
    PP_ERR_NO_MEMORY = -2,
    PP_ERR_UNSUPPORTED = -3,        /**< a feature this build or this version does not have yet */
    PP_ERR_BUFFER_TOO_SMALL = -4,   /**< see *needed for the size required */
    PP_ERR_STATE = -5,              /**< wrong state for the call (e.g. started twice) */
    PP_ERR_VERSION = -6,            /**< unknown option-struct version */
    PP_ERR_CRYPTO = -7,             /**< key generation or TLS failure */
    PP_ERR_IO = -8,                 /**< file or socket error */
    PP_ERR_INTERNAL = -9,           /**< a bug: please report it with pp_last_error() */

    PP_ERR_TICKET_PREFIX = -20,     /**< the text does not start with the ticket prefix */
    PP_ERR_TICKET_VERSION = -21,    /**< made by a newer (or unknown) pixelpass */
    PP_ERR_TICKET_TRUNCATED = -22,  /**< characters are missing at the end */
    PP_ERR_TICKET_CHARACTER = -23,  /**< a character outside the ticket alphabet */
    PP_ERR_TICKET_CHECKSUM = -24,   /**< altered or mistyped */
    PP_ERR_TICKET_EXPIRED = -25,
    PP_ERR_TICKET_MALFORMED = -26,  /**< checksum fine but the content is inconsistent */

    PP_ERR_UNREACHABLE = -40,       /**< no candidate address answered in time */
    PP_ERR_HOST_KEY_MISMATCH = -41, /**< the host's key is not the one the ticket pins */
    PP_ERR_TICKET_REJECTED = -42,   /**< the host refused the ticket's secret */
    PP_ERR_HOST_FULL = -43,         /**< the host's viewer cap is reached */
    PP_ERR_CONNECTION_LOST = -44,   /**< the host went away or the path died */
    PP_ERR_PROTOCOL = -45,          /**< the peer broke the protocol */

    PP_ERR_MEDIA = -60,             /**< the media pipeline failed */
    PP_ERR_MISSING_PLUGIN = -61,    /**< a GStreamer element is missing; detail names the package */
    PP_ERR_CAPTURE_CANCELLED = -62, /**< the user cancelled the screen-share dialog */
    PP_ERR_NO_CAPTURE_SOURCE = -63, /**< no desktop session to capture */
    PP_ERR_PLAYER = -64,            /**< the player is missing, unusable, or failed to start */

    PP_ERR_CONFIG = -80,            /**< a config file is broken; detail names line and column */
    /* Not a value: makes the type int-wide, so any int a caller passes is representable
     * (the library rejects unknown values; a C++ enum with a narrower range could not hold them). */
    PP_RESULT_FORCE_INT32_ = 0x7fffffff
} pp_result;

/** Short, static, English name of a result code. Never NULL. Thread-safe. */
PP_EXPORT const char *pp_strerror(pp_result code);

/**
 * Human detail of the last failure on the calling thread ("ticket truncated: 7 characters
 * missing"), or "" when the last call succeeded. Valid until the next pixelpass call on this
 * thread.
 */
PP_EXPORT const char *pp_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------- */

/** Library version string, e.g. "0.1.0". Compare with PIXELPASS_VERSION to detect a mismatch. */
PP_EXPORT const char *pp_version(void);
/** (major << 16) | (minor << 8) | patch of the running library. */
PP_EXPORT uint32_t pp_version_number(void);

/* ---------------------------------------------------------------------------------------------
 * Tickets
 *
 * A ticket is everything a viewer needs: the host key fingerprint it pins, the access secret,
 * candidate addresses, an optional TURN relay with short-lived credentials, an optional expiry.
 * The text form is documented byte by byte in docs/TICKET.md.
 * ------------------------------------------------------------------------------------------- */

typedef struct pp_ticket pp_ticket;

#define PP_FINGERPRINT_SIZE 32 /**< SHA-256 of the host's SubjectPublicKeyInfo */
#define PP_SECRET_MIN_SIZE 16  /**< at least 128 random bits */
#define PP_SECRET_MAX_SIZE 32

/** How a candidate address was found. */
typedef enum pp_candidate_kind {
    PP_CANDIDATE_LOCAL = 0,     /**< an address of one of the host's interfaces */
    PP_CANDIDATE_REFLEXIVE = 1, /**< the host's public address as a STUN server saw it */
    PP_CANDIDATE_MAPPED = 2,    /**< a UPnP-IGD / NAT-PMP / PCP port mapping */
    PP_CANDIDATE_RELAYED = 3,   /**< the host's allocation on a TURN relay */
    /* Not a value: makes the type int-wide, so any int a caller passes is representable
     * (the library rejects unknown values; a C++ enum with a narrower range could not hold them). */
    PP_CANDIDATE_FORCE_INT32_ = 0x7fffffff
} pp_candidate_kind;

/**
 * Creates a ticket. `fingerprint` is PP_FINGERPRINT_SIZE bytes; `secret` is between
 * PP_SECRET_MIN_SIZE and PP_SECRET_MAX_SIZE bytes.
 */
PP_EXPORT pp_result pp_ticket_new(pp_ticket **out, const uint8_t *fingerprint, const uint8_t *secret,
                                  size_t secret_size);

/** Adds a candidate: `address` is a numeric IPv4 or IPv6 address. At most 16 candidates. */
PP_EXPORT pp_result pp_ticket_add_candidate(pp_ticket *ticket, pp_candidate_kind kind,
                                            const char *address, uint16_t port);

/**
 * Sets the TURN relay: `host` is a DNS name or numeric address; username/credential are the
 * short-lived credentials minted for the viewer (each at most 255 bytes). NULL host clears it.
 */
PP_EXPORT pp_result pp_ticket_set_relay(pp_ticket *ticket, const char *host, uint16_t port,
                                        const char *username, const char *credential);

/** Sets the expiry (seconds since the Unix epoch); 0 means the ticket never expires. */
PP_EXPORT pp_result pp_ticket_set_expiry(pp_ticket *ticket, int64_t unix_seconds);

/**
 * Encodes the ticket as text (prefix, base32 body, checksum). Deterministic: the same ticket
 * always gives the same text.
 */
PP_EXPORT pp_result pp_ticket_encode(const pp_ticket *ticket, char *buf, size_t buf_size,
                                     size_t *needed);

/**
 * Decodes a ticket pasted by a user. Spaces, line breaks, tabs, `<>` and quote characters
 * anywhere in the text are ignored, and case does not matter. An expired ticket fails with
 * PP_ERR_TICKET_EXPIRED. Every other damage gives its own code, and pp_last_error() says where.
 */
PP_EXPORT pp_result pp_ticket_decode(pp_ticket **out, const char *text);

/** Copies the pinned fingerprint (PP_FINGERPRINT_SIZE bytes) into `out`. */
PP_EXPORT pp_result pp_ticket_fingerprint(const pp_ticket *ticket, uint8_t *out);
/** Copies the secret into `out` (up to `out_size` bytes); *secret_size receives its length. */
PP_EXPORT pp_result pp_ticket_secret(const pp_ticket *ticket, uint8_t *out, size_t out_size,
                                     size_t *secret_size);
/** Number of candidates. */
PP_EXPORT size_t pp_ticket_candidate_count(const pp_ticket *ticket);
/** Candidate `index`: kind, port, and the numeric address written as a string to buf. */
PP_EXPORT pp_result pp_ticket_candidate(const pp_ticket *ticket, size_t index,
                                        pp_candidate_kind *kind, uint16_t *port, char *buf,
                                        size_t buf_size, size_t *needed);
/** Expiry in Unix seconds, 0 when none. */
PP_EXPORT int64_t pp_ticket_expiry(const pp_ticket *ticket);

/**
 * A JSON description of the ticket for people and scripts: fingerprint (hex), candidates, relay
 * host/port/username, expiry, length. The secret and the relay credential appear only as short
 * hashes.
 */
PP_EXPORT pp_result pp_ticket_to_json(const pp_ticket *ticket, char *buf, size_t buf_size,
                                      size_t *needed);

PP_EXPORT void pp_ticket_free(pp_ticket *ticket);

/* ---------------------------------------------------------------------------------------------
 * Events (host and viewer)
 * ------------------------------------------------------------------------------------------- */

typedef enum pp_event_type {
    PP_EVENT_LOG = 0,            /**< a log line for the user (message) */
    PP_EVENT_READY = 1,          /**< host listening / viewer connected; json has the details */
    PP_EVENT_VIEWER_JOINED = 2,  /**< host: viewer_id joined; json: path, address */
    PP_EVENT_VIEWER_LEFT = 3,    /**< host: viewer_id left; json: reason */
    PP_EVENT_VIEWER_REFUSED = 4, /**< host: a request was refused (wrong secret, host full) */
    PP_EVENT_PATH_CHANGED = 5,   /**< the path to a peer changed (direct / punched / relayed) */
    PP_EVENT_STATS = 6,          /**< periodic statistics; json as pp_*_stats_json */
    PP_EVENT_ERROR = 7,          /**< a failure; error holds the code, message the detail */
    PP_EVENT_STOPPED = 8         /**< the object stopped (host stopped, viewer disconnected) */
} pp_event_type;

typedef enum pp_log_level {
    PP_LOG_ERROR = 0,
    PP_LOG_WARNING = 1,
    PP_LOG_INFO = 2,
    PP_LOG_DEBUG = 3
} pp_log_level;

typedef struct pp_event {
    pp_event_type type;
    pp_log_level level;  /**< for PP_EVENT_LOG; PP_LOG_ERROR for PP_EVENT_ERROR */
    uint64_t viewer_id;  /**< host events about one viewer; 0 otherwise */
    pp_result error;     /**< PP_EVENT_ERROR / PP_EVENT_STOPPED: why; PP_OK otherwise */
    const char *message; /**< one human line; never NULL */
    const char *json;    /**< structured details as a JSON object; never NULL ("{}" if none) */
} pp_event;

/** Event callback. Runs on the object's loop thread (see the threading contract above). */
typedef void (*pp_event_cb)(const pp_event *event, void *user_data);

/* ---------------------------------------------------------------------------------------------
 * Host
 * ------------------------------------------------------------------------------------------- */

typedef struct pp_host pp_host;

#define PP_HOST_OPTIONS_VERSION 4

typedef struct pp_host_options {
    unsigned version;            /**< PP_HOST_OPTIONS_VERSION */
    const char *source;          /**< "auto" (NULL), "portal", "x11", "test", "synthetic" */
    const char *bind_address;    /**< numeric address to listen on; NULL = all interfaces */
    uint16_t port;               /**< UDP port; 0 = any free port */
    unsigned max_viewers;        /**< viewer cap; 0 = default (from the bandwidth estimate) */
    unsigned bitrate_kbps;       /**< video bitrate; 0 = default */
    unsigned fps;                /**< output frame rate; 0 = default (30) */
    unsigned max_height;         /**< downscale above this height; 0 = keep the source size */
    const char *encoder;         /**< "auto" (NULL), "va", "vaapi", "nvenc", "x264", "openh264" */
    int audio;                   /**< non-zero: capture audio (default sink, or apps below) */
    const char *const *apps;     /**< share only these applications' audio (NULL = all): each
                                      name matches application.name or application.process.binary,
                                      any case; needs PipeWire (else pp_host_new fails, PP_ERR_IO) */
    size_t app_count;
    int monitor;                 /**< monitor index for X11/portal; -1 = whole screen / ask */
    const char *relay;           /**< TURN relay "turn:HOST[:PORT]"; NULL = none */
    const char *relay_username;  /**< static relay username, or NULL */
    const char *relay_password;  /**< static relay password, or NULL */
    const char *relay_secret;    /**< coturn use-auth-secret shared secret, or NULL */
    const char *const *stun_servers; /**< "HOST[:PORT]" list; NULL = built-in defaults */
    size_t stun_server_count;
    int no_stun;                 /**< non-zero: no STUN at all */
    int no_port_mapping;         /**< non-zero: no UPnP / NAT-PMP / PCP */
    int relay_only;              /**< non-zero: offer only the relayed candidate */
    int no_relay;                /**< non-zero: never use a relay */
    int64_t ticket_lifetime_s;   /**< ticket expiry from now, in seconds; 0 = never */
    unsigned grace_ms;           /**< keep capture alive this long after the last viewer */
    const char *name;            /**< host name shown to viewers; NULL = the machine's name */
    /* version 2 */
    const char *const *dht_bootstrap; /**< rendezvous DHT nodes "HOST:PORT"; NULL = the public
                                           OpenDHT bootstrap (none when PIXELPASS_DEFAULT_DHT=off) */
    size_t dht_bootstrap_count;
    int no_dht;                  /**< non-zero: no rendezvous over the DHT */
    const char *congestion_control; /**< "cubic", "bbr", "bbr2", "reno"; NULL = [network]
                                         congestion_control, else the library's default */
    int fixed_bitrate;           /**< non-zero: keep bitrate_kbps; default: the encoder follows what
                                      the viewers' paths deliver (down to 500 kbit/s) */
    const char *const *publish;  /**< media servers that get the same encode: "rtmp://HOST[:PORT]/APP/STREAM",
                                      "rtmps://...", "srt://HOST:PORT[?mode=caller|listener]"; each
                                      target's state is in the stats' "publish" array (v2) */
    size_t publish_count;
    const char *publish_key;     /**< stream key appended to rtmp(s) URLs that name only the
                                      application (read it from a file, never argv); NULL = none (v2) */
    /* version 3 */
    int one_viewer;              /**< non-zero: the ticket admits one viewer, the first connection
                                      whose secret is accepted; every other connection is refused
                                      (the viewer gets PP_ERR_TICKET_REJECTED; stats
                                      totals.refused_one_viewer), also after that viewer left */
    /* version 4 */
    unsigned max_streams_per_viewer; /**< concurrent GET /stream.ts per viewer connection; more get
                                          429 (stats totals.refused_streams); 0 = default (2) */
} pp_host_options;

/* Field order in the initialiser follows the struct; unnamed fields are zero. */
#define PP_HOST_OPTIONS_INIT { PP_HOST_OPTIONS_VERSION, NULL, NULL, 0, 0, 0, 0, 0, NULL, 1, NULL, \
                               0, -1, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, NULL, \
                               NULL, 0, 0, NULL, 0, NULL, 0, NULL, 0, 0 }

/** Fills `options` with defaults for `version` (use PP_HOST_OPTIONS_VERSION). */
PP_EXPORT pp_result pp_host_options_init(pp_host_options *options, unsigned version);

/**
 * Creates a host with a fresh key pair and access secret. Nothing is captured or sent until
 * pp_host_start(). `options` may be NULL for defaults; it is copied. `callback` may be NULL.
 */
PP_EXPORT pp_result pp_host_new(pp_host **out, const pp_host_options *options,
                                pp_event_cb callback, void *user_data);

/** Starts listening. Capture starts with the first viewer. Returns once the host is reachable. */
PP_EXPORT pp_result pp_host_start(pp_host *host);

/** Stops serving: viewers are disconnected, capture ends. The host can be freed afterwards. */
PP_EXPORT pp_result pp_host_stop(pp_host *host);

/** The ticket text for viewers. Before pp_host_start() it has no candidates yet. */
PP_EXPORT pp_result pp_host_ticket(pp_host *host, char *buf, size_t buf_size, size_t *needed);

/** The host key fingerprint as 64 lowercase hex characters. */
PP_EXPORT pp_result pp_host_fingerprint(pp_host *host, char *buf, size_t buf_size, size_t *needed);

/** Statistics as a JSON object: viewers, cap, per-viewer path/RTT/bytes/drops, encoder, rates;
 * with apps: stream.audio_apps {wanted, active, capture_sink, matching: [{name, binary, pid, ...}]};
 * with publish targets: publish [{target (key masked), protocol, state: connecting|live|retrying,
 * reason, retry_in_s, bitrate_kbps, bytes, drops, attempts, connects}]. */
PP_EXPORT pp_result pp_host_stats_json(pp_host *host, char *buf, size_t buf_size, size_t *needed);

/** Stops (if needed) and releases the host. NULL is a no-op. */
PP_EXPORT void pp_host_free(pp_host *host);

/* ---------------------------------------------------------------------------------------------
 * Viewer
 * ------------------------------------------------------------------------------------------- */

typedef struct pp_viewer pp_viewer;

#define PP_VIEWER_OPTIONS_VERSION 2

typedef struct pp_viewer_options {
    unsigned version;            /**< PP_VIEWER_OPTIONS_VERSION */
    const char *ticket;          /**< ticket text as pasted (required) */
    uint16_t listen_port;        /**< local player port on 127.0.0.1; 0 = random */
    unsigned connect_timeout_ms; /**< give up after this long; 0 = default (10 s) */
    int relay_only;              /**< non-zero: only the relay path */
    int no_relay;                /**< non-zero: never the relay path */
    const char *const *stun_servers; /**< "HOST[:PORT]" list; NULL = built-in defaults */
    size_t stun_server_count;
    int no_stun;
    /* version 2 */
    const char *const *dht_bootstrap; /**< rendezvous DHT nodes "HOST:PORT"; NULL = the public
                                           OpenDHT bootstrap (none when PIXELPASS_DEFAULT_DHT=off) */
    size_t dht_bootstrap_count;
    int no_dht;                  /**< non-zero: no rendezvous over the DHT */
} pp_viewer_options;

#define PP_VIEWER_OPTIONS_INIT { PP_VIEWER_OPTIONS_VERSION, NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, 0, 0 }

/** Fills `options` with defaults for `version` (use PP_VIEWER_OPTIONS_VERSION). */
PP_EXPORT pp_result pp_viewer_options_init(pp_viewer_options *options, unsigned version);

/**
 * Decodes the ticket, dials the host, verifies its key and the ticket, and starts the local
 * server for players. Blocks until connected or failed (PP_ERR_UNREACHABLE,
 * PP_ERR_HOST_KEY_MISMATCH, PP_ERR_TICKET_REJECTED, PP_ERR_HOST_FULL, ticket errors).
 */
PP_EXPORT pp_result pp_viewer_connect(pp_viewer **out, const pp_viewer_options *options,
                                      pp_event_cb callback, void *user_data);

/** The local stream URL for a player: http://127.0.0.1:<port>/<random>.ts */
PP_EXPORT pp_result pp_viewer_url(pp_viewer *viewer, char *buf, size_t buf_size, size_t *needed);

/** Statistics as a JSON object: path, RTT, bytes, local clients; path_too_poor and link {too_poor,
 * reason, receive_kbps, bitrate_kbps, floor_kbps, max_kbps, ...}: the host's verdict on this
 * viewer's path while a stream runs (docs/network.md). */
PP_EXPORT pp_result pp_viewer_stats_json(pp_viewer *viewer, char *buf, size_t buf_size,
                                         size_t *needed);

/**
 * Waits up to timeout_ms (negative = forever) for the connection to end. Returns PP_ERR_STATE if
 * it is still up at the timeout, otherwise why it ended (PP_OK when closed by pp_viewer_free or
 * the host stopping cleanly, PP_ERR_CONNECTION_LOST when the host vanished).
 */
PP_EXPORT pp_result pp_viewer_wait(pp_viewer *viewer, int timeout_ms);

/** Disconnects and releases the viewer. NULL is a no-op. */
PP_EXPORT void pp_viewer_free(pp_viewer *viewer);

/* ---------------------------------------------------------------------------------------------
 * Players: mpv (preferred) or VLC, launched with low-latency flags on a viewer's URL.
 * ------------------------------------------------------------------------------------------- */

typedef enum pp_player_kind {
    PP_PLAYER_AUTO = 0, /**< the best usable installed player: mpv, then VLC */
    PP_PLAYER_MPV = 1,
    PP_PLAYER_VLC = 2,
    /* Not a value: makes the type int-wide, so any int a caller passes is representable
     * (the library rejects unknown values; a C++ enum with a narrower range could not hold them). */
    PP_PLAYER_FORCE_INT32_ = 0x7fffffff
} pp_player_kind;

/**
 * The installed players, best first, as a JSON array of {name, path, usable, problem}. `problem`
 * says why a player cannot play a pixelpass stream as installed (e.g. VLC without its MPEG-TS
 * demuxer, with the package to install; VLC run as root).
 */
PP_EXPORT pp_result pp_players_json(char *buf, size_t buf_size, size_t *needed);

/**
 * The shell command line that plays `url` with low-latency flags, for people to copy.
 *
 * For mpv this has a side effect: the command loads a small Lua script that keeps a live stream
 * at its live edge (with sound, mpv never drops what queued up while it was starting; the script
 * plays such a backlog away slightly faster), and pp_player_command writes that script so the
 * printed command works as printed. It goes to $XDG_RUNTIME_DIR/pixelpass/pixelpass-live.lua,
 * else $XDG_CACHE_HOME/pixelpass/ (or ~/.cache/pixelpass/); the directory is created 0700 if
 * missing and used only if it is this user's, not a symlink and not writable by others; the file
 * is mode 0600, replaced atomically (temporary file + rename) only when its content differs.
 * When no such directory can be used the command has no --script and mpv plays without it.
 * pp_player_launch does the same.
 */
PP_EXPORT pp_result pp_player_command(pp_player_kind player, const char *url, char *buf,
                                      size_t buf_size, size_t *needed);

/**
 * Starts the player on `url`, detached (its own session, stdio on /dev/null), so it outlives the
 * caller. *pid receives its process id. Fails with PP_ERR_PLAYER and a hint when none is usable.
 */
PP_EXPORT pp_result pp_player_launch(pp_player_kind player, const char *url, int64_t *pid);

/* ---------------------------------------------------------------------------------------------
 * Repair: clean up audio-routing objects left behind by pixelpass processes that died.
 * ------------------------------------------------------------------------------------------- */

#define PP_REPAIR_OPTIONS_VERSION 1

typedef struct pp_repair_options {
    unsigned version; /**< PP_REPAIR_OPTIONS_VERSION */
    int dry_run;      /**< non-zero: only report what would be removed */
} pp_repair_options;

#define PP_REPAIR_OPTIONS_INIT { PP_REPAIR_OPTIONS_VERSION, 0 }

/**
 * Finds orphaned pixelpass_capture_<pid> sinks, their loopbacks and remembered stream targets of
 * dead processes and removes them (unless dry_run). The report is a JSON object listing what was
 * removed, what was skipped (live owners) and what failed, and whether the setup is now "clean".
 * The report follows the string convention, but a repair acts: when it does not fit, the work is
 * done and the report kept, and the next pp_repair call on the same thread with the same dry_run
 * returns that report instead of repairing again. Returns PP_ERR_IO when no PipeWire or
 * PulseAudio server is reachable, PP_ERR_UNSUPPORTED when built without PipeWire support.
 */
PP_EXPORT pp_result pp_repair(const pp_repair_options *options, char *report, size_t report_size,
                              size_t *needed);

/* ---------------------------------------------------------------------------------------------
 * Demo: the main job on its embedded default — host the test source and view it in one process.
 * ------------------------------------------------------------------------------------------- */

#define PP_DEMO_OPTIONS_VERSION 3

typedef struct pp_demo_options {
    unsigned version;      /**< PP_DEMO_OPTIONS_VERSION */
    double seconds;        /**< headless: decode this long (0 = 5 s); with mpv: stop after this
                                long (0 = when the player window closes) */
    int headless;          /**< non-zero: never open a player, even with a display */
    const char *encoder;   /**< as pp_host_options.encoder; NULL = "auto" */
    unsigned bitrate_kbps; /**< 0 = default */
    unsigned fps;          /**< 0 = default (30) */
    unsigned max_height;   /**< 0 = the test source's 720p */
    int audio;             /**< non-zero: include the test tone */
    /* Version 2: */
    const char *const *publish; /**< as pp_host_options.publish: also send the demo stream there */
    size_t publish_count;
    const char *publish_key;    /**< as pp_host_options.publish_key */
    /* version 3 */
    const char *const *dht_bootstrap; /**< rendezvous DHT nodes "HOST:PORT" (NULL = [network]
                                           dht_bootstrap of the config, else none): given, the
                                           demo's loopback host joins them and its viewer leaves
                                           its sealed offer there, so the rendezvous runs end to
                                           end on this machine. The public DHT is never used. */
    size_t dht_bootstrap_count;
    int no_dht;                       /**< non-zero: no rendezvous, even with nodes configured */
} pp_demo_options;

#define PP_DEMO_OPTIONS_INIT { PP_DEMO_OPTIONS_VERSION, 0.0, 0, NULL, 0, 0, 0, 1, NULL, 0, NULL, NULL, 0, 0 }

/** Fills `options` with defaults for `version` (use PP_DEMO_OPTIONS_VERSION). */
PP_EXPORT pp_result pp_demo_options_init(pp_demo_options *options, unsigned version);

/**
 * Hosts the test source (moving pattern, burnt-in clock, tone) and connects a viewer to it over
 * real QUIC on loopback, in this process. With a display (DISPLAY or WAYLAND_DISPLAY) and mpv,
 * and unless options->headless, it plays the stream in mpv; otherwise it decodes it headlessly.
 * Blocks for the run. `callback` (may be NULL) receives the host's and viewer's events. The
 * report is a JSON object: mode, frames_decoded, width, height, fps, bitrate_kbps,
 * time_to_first_frame_ms, latency_ms {median, p95, max}, path, encoder, problems, ok, and the host
 * and viewer statistics. A demo acts: a report that does not fit is kept, and the next
 * pp_demo_run call on the same thread returns it instead of running again. Fails with
 * PP_ERR_MISSING_PLUGIN (naming the package), PP_ERR_MEDIA (nothing decoded), or the viewer's
 * connection errors. `options` may be NULL for defaults.
 */
PP_EXPORT pp_result pp_demo_run(const pp_demo_options *options, pp_event_cb callback, void *user_data,
                                char *report, size_t report_size, size_t *needed);

/* ---------------------------------------------------------------------------------------------
 * Config, bandwidth pre-flight, clipboard, doctor: the everyday experience.
 *
 * The config file is $XDG_CONFIG_HOME/pixelpass/config.toml (else ~/.config/pixelpass/...). It is
 * read by pp_host_new for the defaults of unset options (bitrate, viewer cap, encoder, relay, STUN
 * servers). A missing file is the first-run state; a broken one fails with PP_ERR_CONFIG and a
 * "path:line:column: what" detail and is never written over. Not thread-safe against concurrent
 * writers of the same file (each write is atomic, the last one wins).
 * ------------------------------------------------------------------------------------------- */

/** The config file's path (it need not exist). */
PP_EXPORT pp_result pp_config_path(char *buf, size_t buf_size, size_t *needed);

/**
 * The effective config as JSON: {path, exists, host{bitrate_kbps, max_viewers, player, encoder},
 * viewer{player}, network{relay, stun_servers}, bandwidth{status, upstream_mbps, measured_at, endpoint},
 * warnings[] (unknown keys, with line and column), default_max_viewers}.
 */
PP_EXPORT pp_result pp_config_json(char *buf, size_t buf_size, size_t *needed);

/**
 * Sets one key ("host.max_viewers", "viewer.player", "bandwidth.status", ...) to `json_value` (JSON text: 4,
 * "mpv", ["stun.example.org:3478"]). Only that value's text changes in the file (comments stay);
 * the write is atomic. PP_ERR_INVALID_ARGUMENT for an unknown key or a wrong type.
 */
PP_EXPORT pp_result pp_config_set(const char *key, const char *json_value);

/** Progress of a bandwidth test: fraction done (0..1) and the rate so far in Mbit/s. */
typedef void (*pp_progress_cb)(double fraction, double mbps, void *user_data);

/**
 * Measures upstream bandwidth with a ~5 s / ~5 MB HTTP upload to `endpoint` (NULL: the
 * PIXELPASS_SPEEDTEST_URL environment variable, else [bandwidth] endpoint, else Cloudflare's
 * public speed-test endpoint) and records the result in the config: status "measured" with
 * upstream_mbps = measured × 0.8, or "failed". Ask the user first: this sends data to a third
 * party. *upstream_mbps (may be NULL) receives the estimate. PP_ERR_UNREACHABLE when the test
 * failed (pp_last_error says why); the failure is recorded. `progress` runs on the calling thread.
 */
PP_EXPORT pp_result pp_bandwidth_test(const char *endpoint, pp_progress_cb progress, void *user_data,
                                      double *upstream_mbps);

/** Records that the user declined the bandwidth test: it is not offered again. */
PP_EXPORT pp_result pp_bandwidth_skip(void);

/**
 * Copies `text` to the clipboard: wl-copy (Wayland), xclip or xsel (X11), else an OSC 52 escape
 * written to `tty_fd` when that is a terminal (-1: never). `method` receives what was used
 * ("wl-copy", "xclip", "xsel", "osc52"). PP_ERR_UNSUPPORTED, with what to install, when nothing
 * worked.
 */
PP_EXPORT pp_result pp_clipboard_copy(const char *text, int tty_fd, char *method, size_t method_size,
                                      size_t *needed);

/**
 * Runs the health checks and returns {checks: [{name, status ("ok", "warning", "error",
 * "skipped"), detail, fix}], can_share, can_view}. Network probes go only to the STUN servers and
 * relay named in the config; each waits at most `probe_timeout_ms` (0 = 1500).
 */
PP_EXPORT pp_result pp_doctor_json(unsigned probe_timeout_ms, char *buf, size_t buf_size, size_t *needed);

/* ---------------------------------------------------------------------------------------------
 * Capture
 * ------------------------------------------------------------------------------------------- */

/**
 * Forgets the screen or window chosen in the Wayland screen-share dialog: deletes the portal's
 * restore token ($XDG_STATE_HOME/pixelpass/screencast-restore-token), so the next portal share
 * asks again. *forgotten (may be NULL) is set to 1 when a token was deleted, 0 when there was none.
 * Returns PP_ERR_IO when the token cannot be deleted or no state directory is known.
 */
PP_EXPORT pp_result pp_forget_screen(int *forgotten);

/* ---- relay (TURN) set-up ---------------------------------------------------------------- */

/** Size of a relay secret from pp_relay_secret_new, including the terminating NUL. */
#define PP_RELAY_SECRET_BUFFER 65

/**
 * Writes a fresh random relay secret (64 hex characters and a NUL) for coturn's
 * static-auth-secret. `buf_size` must be at least PP_RELAY_SECRET_BUFFER (else
 * PP_ERR_BUFFER_TOO_SMALL, nothing written).
 */
PP_EXPORT pp_result pp_relay_secret_new(char *buf, size_t buf_size);

/**
 * A coturn configuration (turnserver.conf) for a pixelpass relay reachable at `public_host`
 * (its DNS name or address, as viewers will reach it) on UDP `port` (0 = 3478) with `secret` as
 * its static-auth-secret, ending with the matching `pixelpass host` line as a comment.
 * String convention. PP_ERR_INVALID_ARGUMENT for an empty host or a secret under 16 characters.
 */
PP_EXPORT pp_result pp_relay_config(const char *public_host, const char *secret, uint16_t port,
                                    char *buf, size_t buf_size, size_t *needed);

#ifdef __cplusplus
}
#endif

#endif /* PIXELPASS_H */
