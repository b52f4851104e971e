#include "quic/connection.hpp"

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <cstring>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "quic/endpoint.hpp"

namespace pp::quic {

static_assert(sizeof(Vec) == sizeof(ngtcp2_vec) && offsetof(Vec, base) == offsetof(ngtcp2_vec, base) &&
              offsetof(Vec, len) == offsetof(ngtcp2_vec, len));

struct ConnRef {
    ngtcp2_crypto_conn_ref ref;
};

const char *congestion_control_name(CongestionControl cc) {
    switch (cc) {
    case CongestionControl::cubic: return "cubic";
    case CongestionControl::reno: return "reno";
    case CongestionControl::bbr: return "bbr";
    case CongestionControl::bbr2: return "bbr2";
    }
    return "?";
}

std::optional<CongestionControl> parse_congestion_control(std::string_view name) {
    std::string lower(name);
    for (auto &ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (auto cc : {CongestionControl::cubic, CongestionControl::reno, CongestionControl::bbr, CongestionControl::bbr2})
        if (lower == congestion_control_name(cc)) return cc;
    return std::nullopt;
}

namespace {

ngtcp2_cc_algo cc_algo(CongestionControl cc) {
    switch (cc) {
    case CongestionControl::cubic: return NGTCP2_CC_ALGO_CUBIC;
    case CongestionControl::reno: return NGTCP2_CC_ALGO_RENO;
    case CongestionControl::bbr: return NGTCP2_CC_ALGO_BBR;
    case CongestionControl::bbr2: return NGTCP2_CC_ALGO_BBR2;
    }
    return NGTCP2_CC_ALGO_CUBIC;
}


constexpr size_t kCidLen = 16;         // our source connection IDs (Endpoint routes on this length)
constexpr size_t kMaxBatch = 64;       // datagrams per GSO send
constexpr size_t kMaxBatchBytes = 65000;
constexpr int kMaxRounds = 16;         // GSO batches per write pass before reading again

// TLS 1.3 only. AES-GCM first: with AES-NI it is several times cheaper than ChaCha20 here.
constexpr const char *kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";

ngtcp2_tstamp now() { return net::monotonic_ns(); }

ngtcp2_cid make_cid(const std::string &bytes) {
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
    return cid;
}

std::string cid_key(const ngtcp2_cid *cid) {
    return std::string(reinterpret_cast<const char *>(cid->data), cid->datalen);
}

void trace(void *, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    std::vfprintf(stderr, format, ap);
    va_end(ap);
    std::fputc('\n', stderr);
}

gnutls_datum_t alpn_datum(std::string_view alpn) {
    return {reinterpret_cast<unsigned char *>(const_cast<char *>(alpn.data())),
            static_cast<unsigned>(alpn.size())};
}

bool alpn_is_ours(gnutls_session_t session) {
    gnutls_datum_t selected{};
    if (gnutls_alpn_get_selected_protocol(session, &selected) != 0) return false;
    return std::string_view(reinterpret_cast<const char *>(selected.data), selected.size) == kAlpn;
}

// Server: refuse a ClientHello that did not settle on our ALPN (GnuTLS alone lets a client that
// offers no ALPN at all through).
int client_hello_hook(gnutls_session_t session, unsigned, unsigned, unsigned, const gnutls_datum_t *) {
    return alpn_is_ours(session) ? 0 : GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

void tls_check(int rc, const char *what) {
    if (rc < 0) throw Error(PP_ERR_CRYPTO, std::string(what) + ": " + gnutls_strerror(rc));
}

// What both ends start from; the server-only parts (Retry, stateless reset) are added where the
// connection is created.
ngtcp2_settings base_settings(const TransportOptions &t) {
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now();
    settings.cc_algo = cc_algo(t.congestion_control);
    settings.max_window = t.max_conn_window;
    settings.max_stream_window = t.max_stream_window;
    settings.handshake_timeout = t.handshake_timeout_ms * NGTCP2_MILLISECONDS;
    if (t.max_udp_payload) settings.max_tx_udp_payload_size = t.max_udp_payload;
    if (std::getenv("PIXELPASS_QUIC_TRACE")) settings.log_printf = trace;
    return settings;
}

ngtcp2_transport_params base_params(const TransportOptions &t, bool server) {
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_local = t.stream_window;
    params.initial_max_stream_data_bidi_remote = t.stream_window;
    params.initial_max_stream_data_uni = 256 * 1024;
    params.initial_max_data = t.conn_window;
    params.initial_max_streams_bidi = server ? t.max_streams_bidi : 0;
    params.initial_max_streams_uni = t.max_streams_uni;
    params.max_idle_timeout = t.idle_timeout_ms * NGTCP2_MILLISECONDS;
    params.active_connection_id_limit = 4;
    return params;
}

} // namespace

const char *close_kind_name(CloseKind kind) {
    switch (kind) {
    case CloseKind::local: return "closed locally";
    case CloseKind::peer: return "closed by peer";
    case CloseKind::idle_timeout: return "idle timeout";
    case CloseKind::handshake_timeout: return "handshake timeout";
    case CloseKind::key_mismatch: return "host key mismatch";
    case CloseKind::handshake_failed: return "handshake failed";
    case CloseKind::unreachable: return "unreachable";
    case CloseKind::error: return "protocol error";
    }
    return "closed";
}

// ngtcp2's C callbacks, forwarding to the Connection. An exception never crosses into ngtcp2: an
// ApplicationError closes the connection with its code, anything else with INTERNAL_ERROR.
struct Connection::Callbacks {
    static Connection &self(void *user_data) { return *static_cast<Connection *>(user_data); }

    template <typename F>
    static int guard(void *user_data, F &&body) {
        Connection &c = self(user_data);
        try {
            body(c);
            return 0;
        } catch (const ApplicationError &e) {
            if (!c.app_error_) c.app_error_ = e;
        } catch (const std::exception &e) {
            if (!c.app_error_) c.app_error_ = ApplicationError(0x102, e.what());  // H3_INTERNAL_ERROR
        }
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }

    static void rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *) {
        gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
    }

    static int new_cid(ngtcp2_conn *, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *user_data) {
        Connection &c = self(user_data);
        if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, cidlen) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
        cid->datalen = cidlen;
        const auto &secret = c.endpoint_.static_secret();
        if (ngtcp2_crypto_generate_stateless_reset_token(token, secret.data(), secret.size(), cid) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        std::string key = cid_key(cid);
        c.cids_.push_back(key);
        c.endpoint_.add_cid(key, &c);
        return 0;
    }

    static int remove_cid(ngtcp2_conn *, const ngtcp2_cid *cid, void *user_data) {
        Connection &c = self(user_data);
        std::string key = cid_key(cid);
        c.endpoint_.remove_cid(key);
        c.cids_.erase(std::remove(c.cids_.begin(), c.cids_.end(), key), c.cids_.end());
        return 0;
    }

    static int handshake_completed(ngtcp2_conn *conn, void *user_data) {
        Connection &c = self(user_data);
        if (!alpn_is_ours(c.tls_.get())) {
            c.handshake_error_ = "the peer did not agree on ALPN " + std::string(kAlpn);
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
        c.established_ = true;
        c.announce_established_ = true;
        ngtcp2_conn_set_keep_alive_timeout(conn, c.transport_.keep_alive_ms * NGTCP2_MILLISECONDS);
        return 0;
    }

    // 1-RTT keys: the server may send application data once it has the write key, the client
    // once it has the read key (the handshake, and with it the key check, is then done).
    static int start_app(void *user_data) {
        return guard(user_data, [](Connection &c) {
            if (c.app_ || !c.make_app_) return;
            c.app_ = c.make_app_(c);
            c.app_->start();
        });
    }
    static int rx_key(ngtcp2_conn *, ngtcp2_crypto_level level, void *user_data) {
        if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION || self(user_data).server_) return 0;
        return start_app(user_data);
    }
    static int tx_key(ngtcp2_conn *, ngtcp2_crypto_level level, void *user_data) {
        if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION || !self(user_data).server_) return 0;
        return start_app(user_data);
    }

    static int recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id, uint64_t,
                                const uint8_t *data, size_t len, void *user_data, void *) {
        return guard(user_data, [&](Connection &c) {
            uint64_t consumed = len;
            if (c.app_)
                consumed = c.app_->receive(stream_id, {data, len}, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
            if (consumed) {
                ngtcp2_conn_extend_max_stream_offset(conn, stream_id, consumed);
                ngtcp2_conn_extend_max_offset(conn, consumed);
            }
        });
    }

    static int acked(ngtcp2_conn *, int64_t stream_id, uint64_t, uint64_t len, void *user_data, void *) {
        return guard(user_data, [&](Connection &c) {
            if (c.app_) c.app_->acked(stream_id, len);
        });
    }

    static int stream_close(ngtcp2_conn *, uint32_t flags, int64_t stream_id, uint64_t app_error,
                            void *user_data, void *) {
        return guard(user_data, [&](Connection &c) {
            std::optional<uint64_t> code;
            if (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) code = app_error;
            if (c.app_) c.app_->stream_closed(stream_id, code);
        });
    }

    static int stream_reset(ngtcp2_conn *, int64_t stream_id, uint64_t, uint64_t app_error,
                            void *user_data, void *) {
        return guard(user_data, [&](Connection &c) {
            if (c.app_) c.app_->stream_reset(stream_id, app_error);
        });
    }

    static int stream_stop_sending(ngtcp2_conn *, int64_t stream_id, uint64_t app_error,
                                   void *user_data, void *) {
        return guard(user_data, [&](Connection &c) {
            if (c.app_) c.app_->stream_stop_sending(stream_id, app_error);
        });
    }

    static int extend_max_stream_data(ngtcp2_conn *, int64_t stream_id, uint64_t, void *user_data,
                                      void *) {
        return guard(user_data, [&](Connection &c) {
            if (c.app_) c.app_->stream_unblocked(stream_id);
        });
    }

    static int extend_remote_bidi(ngtcp2_conn *, uint64_t max, void *user_data) {
        return guard(user_data, [&](Connection &c) {
            if (c.app_) c.app_->remote_streams_bidi(max);
        });
    }

    static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
        return static_cast<Connection *>(ref->user_data)->conn_.get();
    }

    static int verify(gnutls_session_t session) {
        auto *ref = static_cast<ngtcp2_crypto_conn_ref *>(gnutls_session_get_ptr(session));
        return static_cast<Connection *>(ref->user_data)->verify_peer();
    }

    // The table handed to ngtcp2: packet protection from ngtcp2_crypto, the rest forwarded here.
    static ngtcp2_callbacks table(bool server) {
        ngtcp2_callbacks cb{};
        cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
        cb.encrypt = ngtcp2_crypto_encrypt_cb;
        cb.decrypt = ngtcp2_crypto_decrypt_cb;
        cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
        cb.update_key = ngtcp2_crypto_update_key_cb;
        cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
        cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
        cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
        cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
        cb.rand = Callbacks::rand;
        cb.get_new_connection_id = Callbacks::new_cid;
        cb.remove_connection_id = Callbacks::remove_cid;
        cb.handshake_completed = Callbacks::handshake_completed;
        cb.recv_stream_data = Callbacks::recv_stream_data;
        cb.acked_stream_data_offset = Callbacks::acked;
        cb.stream_close = Callbacks::stream_close;
        cb.stream_reset = Callbacks::stream_reset;
        cb.stream_stop_sending = Callbacks::stream_stop_sending;
        cb.extend_max_stream_data = Callbacks::extend_max_stream_data;
        cb.extend_max_remote_streams_bidi = Callbacks::extend_remote_bidi;
        cb.recv_rx_key = Callbacks::rx_key;
        cb.recv_tx_key = Callbacks::tx_key;
        if (server) {
            cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
        } else {
            cb.client_initial = ngtcp2_crypto_client_initial_cb;
            cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
        }
        return cb;
    }
};

Connection::Connection(Endpoint &endpoint, uint64_t id, const Params &p)
    : endpoint_(endpoint), id_(id), server_(p.server), local_(p.local), remote_(p.remote),
      pin_(p.pin), conn_(nullptr, ngtcp2_conn_del),
      tls_(nullptr, [](gnutls_session_int *s) { gnutls_deinit(s); }), make_app_(p.make_app),
      transport_(p.transport) {
    create_conn(p);
    create_tls(p);  // after create_conn: the TLS session is handed to ngtcp2's connection
    timer_ = std::make_unique<net::Timer>(endpoint_.loop(), [this] { on_timer(); });
    tx_.resize(kMaxBatchBytes + 4096);

    cids_.push_back(p.scid);
    if (server_) cids_.push_back(p.original_dcid);
    if (server_ && !p.retry_scid.empty()) cids_.push_back(p.retry_scid);  // the client's DCID now
    for (const auto &cid : cids_) endpoint_.add_cid(cid, this);
}

// ngtcp2's half: the connection object with our callbacks, settings and transport parameters.
void Connection::create_conn(const Params &p) {
    ngtcp2_callbacks cb = Callbacks::table(server_);
    ngtcp2_settings settings = base_settings(transport_);
    ngtcp2_transport_params params = base_params(transport_, server_);

    ngtcp2_cid dcid = make_cid(p.dcid), scid = make_cid(p.scid);
    ngtcp2_path path{{const_cast<sockaddr *>(local_.sa()), local_.len()},
                     {const_cast<sockaddr *>(remote_.sa()), remote_.len()},
                     nullptr};
    ngtcp2_conn *raw = nullptr;
    int rv;
    if (server_) {
        params.original_dcid = make_cid(p.original_dcid);
        if (!p.retry_scid.empty()) {
            // The client proved its address with our Retry token: not limited to 3x amplification.
            params.retry_scid = make_cid(p.retry_scid);
            params.retry_scid_present = 1;
            settings.token.base = reinterpret_cast<uint8_t *>(const_cast<char *>(p.token.data()));
            settings.token.len = p.token.size();
        }
        params.stateless_reset_token_present = 1;
        const auto &secret = endpoint_.static_secret();
        ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token, secret.data(),
                                                     secret.size(), &scid);
        rv = ngtcp2_conn_server_new(&raw, &dcid, &scid, &path, p.version, &cb, &settings, &params,
                                    nullptr, this);
    } else {
        rv = ngtcp2_conn_client_new(&raw, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                                    &params, nullptr, this);
    }
    if (rv != 0) throw Error(PP_ERR_INTERNAL, std::string("QUIC connection: ") + ngtcp2_strerror(rv));
    conn_.reset(raw);
}

// GnuTLS's half: the session ngtcp2 drives the handshake through, and the peer checks.
void Connection::create_tls(const Params &p) {
    conn_ref_ = std::make_unique<ConnRef>();
    conn_ref_->ref.get_conn = Callbacks::get_conn;
    conn_ref_->ref.user_data = this;

    gnutls_session_t session = nullptr;
    tls_check(gnutls_init(&session, (server_ ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET : GNUTLS_CLIENT) |
                                        GNUTLS_NO_END_OF_EARLY_DATA),
              "TLS session");
    tls_.reset(session);
    tls_check(gnutls_priority_set_direct(session, kPriority, nullptr), "TLS priorities");
    int configured = server_ ? ngtcp2_crypto_gnutls_configure_server_session(session)
                             : ngtcp2_crypto_gnutls_configure_client_session(session);
    if (configured != 0) throw Error(PP_ERR_CRYPTO, "TLS session for QUIC could not be configured");
    gnutls_session_set_ptr(session, &conn_ref_->ref);
    tls_check(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, p.credentials), "TLS credentials");
    gnutls_datum_t alpn = alpn_datum(server_ ? kAlpn : std::string_view(p.alpn));
    if (server_) {
        gnutls_handshake_set_hook_function(session, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST,
                                           client_hello_hook);
        tls_check(gnutls_alpn_set_protocols(session, &alpn, 1,
                                            GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE),
                  "ALPN");
    } else {
        // The certificate is self-signed and names nobody: the only check that matters is the
        // pinned key, made here, before the handshake can complete and before any request.
        gnutls_session_set_verify_function(session, Callbacks::verify);
        tls_check(gnutls_alpn_set_protocols(session, &alpn, 1, GNUTLS_ALPN_MANDATORY), "ALPN");
        tls_check(gnutls_server_name_set(session, GNUTLS_NAME_DNS, "pixelpass", 9), "server name");
    }
    ngtcp2_conn_set_tls_native_handle(conn_.get(), session);
}

Connection::~Connection() {
    for (const auto &cid : cids_) endpoint_.remove_cid(cid);
    app_.reset();  // before ngtcp2: the application may still name streams
}

// ---- operations for the application ----

int64_t Connection::open_bidi_stream() {
    int64_t id = -1;
    if (ngtcp2_conn_open_bidi_stream(conn_.get(), &id, nullptr) != 0) return -1;
    return id;
}

int64_t Connection::open_uni_stream() {
    int64_t id = -1;
    if (ngtcp2_conn_open_uni_stream(conn_.get(), &id, nullptr) != 0) return -1;
    return id;
}

void Connection::credit(int64_t stream_id, uint64_t bytes) {
    if (state_ != State::open || bytes == 0) return;
    ngtcp2_conn_extend_max_stream_offset(conn_.get(), stream_id, bytes);
    ngtcp2_conn_extend_max_offset(conn_.get(), bytes);
    schedule_write();  // MAX_DATA / MAX_STREAM_DATA go out with the next packet
}

void Connection::shutdown_stream(int64_t stream_id, uint64_t app_error) {
    if (state_ == State::open) ngtcp2_conn_shutdown_stream(conn_.get(), stream_id, app_error);
    schedule_write();
}

void Connection::shutdown_stream_read(int64_t stream_id, uint64_t app_error) {
    if (state_ == State::open) ngtcp2_conn_shutdown_stream_read(conn_.get(), stream_id, app_error);
    schedule_write();
}

void Connection::shutdown_stream_write(int64_t stream_id, uint64_t app_error) {
    if (state_ == State::open) ngtcp2_conn_shutdown_stream_write(conn_.get(), stream_id, app_error);
    schedule_write();
}

void Connection::extend_max_streams_bidi(uint64_t n) {
    if (state_ == State::open) ngtcp2_conn_extend_max_streams_bidi(conn_.get(), n);
}

uint64_t Connection::local_max_streams_bidi() const {
    return ngtcp2_conn_get_local_transport_params(conn_.get())->initial_max_streams_bidi;
}

uint64_t Connection::uni_streams_left() const { return ngtcp2_conn_get_max_local_streams_uni(conn_.get()); }

bool Connection::is_local_stream(int64_t stream_id) const {
    return ngtcp2_conn_is_local_stream(conn_.get(), stream_id) != 0;
}

bool Connection::is_bidi_stream(int64_t stream_id) { return ngtcp2_is_bidi_stream(stream_id) != 0; }

void Connection::schedule_write() {
    if (state_ == State::open) endpoint_.schedule_write(this);
}

void Connection::close(uint64_t app_error, std::string reason) {
    if (state_ != State::open) return;
    close_requested_ = std::make_pair(app_error, std::move(reason));
    if (in_callback_) {
        schedule_write();  // write() acts on it once the callbacks are off the stack
        return;
    }
    write();
}

Connection::Stats Connection::stats() const {
    Stats s = counters_;
    if (!conn_) return s;
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(conn_.get(), &cs);
    s.rtt_ms = static_cast<double>(cs.smoothed_rtt) / 1e6;
    s.min_rtt_ms = cs.min_rtt == UINT64_MAX ? 0 : static_cast<double>(cs.min_rtt) / 1e6;
    s.cwnd = cs.cwnd;
    s.bytes_in_flight = cs.bytes_in_flight;
    s.max_udp_payload = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_.get());
    s.delivery_rate_bps = static_cast<double>(cs.delivery_rate_sec) * 8;
    s.pacing_rate_bps = cs.pacing_rate * 8e9;  // ngtcp2: bytes per nanosecond
    return s;
}

uint64_t Connection::stream_lost_packets(int64_t stream_id) const {
    return conn_ ? ngtcp2_conn_get_stream_loss_count(conn_.get(), stream_id) : 0;
}

// ---- read path ----

void Connection::receive(const net::Datagram &d) {
    if (state_ == State::closing) {
        // Answer stragglers with the close again, backing off (1st, 2nd, 4th, 8th ... packet).
        ++close_rx_count_;
        if (!close_packet_.empty() && (close_rx_count_ & (close_rx_count_ - 1)) == 0)
            endpoint_.socket().send(remote_, server_ ? &local_ : nullptr, close_packet_, close_packet_.size());
        return;
    }
    if (state_ != State::open) return;
    ++counters_.rx_datagrams;
    counters_.rx_bytes += d.data.size();
    if (probe_deadline_) {
        // Alive after all (the ICMP report was stale or forged): back to normal keep-alive.
        probe_deadline_ = 0;
        ngtcp2_conn_set_keep_alive_timeout(conn_.get(), transport_.keep_alive_ms * NGTCP2_MILLISECONDS);
    }
    const net::Address &local = server_ ? d.local : local_;
    ngtcp2_path path{{const_cast<sockaddr *>(local.sa()), local.len()},
                     {const_cast<sockaddr *>(d.remote.sa()), d.remote.len()},
                     nullptr};
    ngtcp2_pkt_info pi{};
    pi.ecn = d.ecn;
    bool first = counters_.rx_datagrams == 1 && server_;
    in_callback_ = true;
    int rv = ngtcp2_conn_read_pkt(conn_.get(), &path, &pi, d.data.data(), d.data.size(), now());
    in_callback_ = false;
    note_congestion();
    if (rv != 0) {
        if (first && rv != NGTCP2_ERR_CRYPTO) {
            die(std::nullopt);  // a datagram that never was a connection: no answer, no event
            return;
        }
        // (A TLS refusal of a real ClientHello — say, a foreign ALPN — does get its alert.)
        handle_error(rv);
        return;
    }
    after_callbacks();
    if (state_ == State::open) schedule_write();
}

void Connection::after_callbacks() {
    if (announce_established_ && state_ == State::open) {
        announce_established_ = false;
        if (endpoint_.observer().established) endpoint_.observer().established(*this);
    }
}

void Connection::handle_error(int liberr) {
    if (state_ != State::open) return;
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    CloseInfo info;
    switch (liberr) {
    case NGTCP2_ERR_DRAINING:
        start_draining();
        return;
    case NGTCP2_ERR_IDLE_CLOSE:
        die(CloseInfo{CloseKind::idle_timeout, false, 0, "no packet from the peer in " +
                                                             std::to_string(transport_.idle_timeout_ms / 1000) + " s"});
        return;
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
        die(CloseInfo{CloseKind::handshake_timeout, false, 0, "no handshake within " +
                                                                  std::to_string(transport_.handshake_timeout_ms) + " ms"});
        return;
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_RETRY:
        die(CloseInfo{CloseKind::error, false, 0, ngtcp2_strerror(liberr)});
        return;
    case NGTCP2_ERR_CRYPTO:
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &ccerr, ngtcp2_conn_get_tls_alert(conn_.get()), nullptr, 0);
        if (key_mismatch_)
            info = {CloseKind::key_mismatch, false, ccerr.error_code, key_mismatch_detail_};
        else
            info = {CloseKind::handshake_failed, false, ccerr.error_code,
                    "TLS handshake failed (alert " + std::to_string(ngtcp2_conn_get_tls_alert(conn_.get())) + ")"};
        break;
    case NGTCP2_ERR_CALLBACK_FAILURE:
        if (app_error_) {
            ngtcp2_connection_close_error_set_application_error(&ccerr, app_error_->code(), nullptr, 0);
            info = {CloseKind::error, true, app_error_->code(), app_error_->what()};
            break;
        }
        if (!handshake_error_.empty()) {
            ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, nullptr, 0);
            info = {CloseKind::handshake_failed, false, ccerr.error_code, handshake_error_};
            break;
        }
        [[fallthrough]];
    default:
        ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, nullptr, 0);
        info = {CloseKind::error, false, ccerr.error_code, ngtcp2_strerror(liberr)};
        break;
    }
    start_closing(&ccerr, std::move(info));
}

void Connection::start_closing(const void *opaque, CloseInfo info) {
    const auto *ccerr = static_cast<const ngtcp2_connection_close_error *>(opaque);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    std::vector<uint8_t> buf(1500);
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_.get(), &ps.path, &pi, buf.data(),
                                                        buf.size(), ccerr, now());
    if (n <= 0) {
        die(std::move(info));
        return;
    }
    buf.resize(static_cast<size_t>(n));
    close_packet_ = std::move(buf);
    endpoint_.socket().send(remote_, server_ ? &local_ : nullptr, close_packet_, close_packet_.size());
    ++counters_.tx_datagrams;
    counters_.tx_bytes += close_packet_.size();
    state_ = State::closing;
    notify_closed(info);
    app_.reset();
    // Stay a while to answer late packets with the close again (RFC 9000 §10.2: three PTOs).
    timer_->arm_at(now() + 3 * ngtcp2_conn_get_pto(conn_.get()));
}

void Connection::start_draining() {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_conn_get_connection_close_error(conn_.get(), &ccerr);
    CloseInfo info{CloseKind::peer,
                   ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION, ccerr.error_code,
                   std::string(reinterpret_cast<const char *>(ccerr.reason), ccerr.reasonlen)};
    if (!established_ && !info.application && info.code >= 0x100 && info.code <= 0x1ff) {
        // CRYPTO_ERROR: the peer's TLS refused the handshake (e.g. 0x178, no common ALPN).
        info.kind = CloseKind::handshake_failed;
        info.detail = "the peer refused the TLS handshake (alert " + std::to_string(info.code - 0x100) + ")";
    }
    state_ = State::draining;
    notify_closed(info);
    app_.reset();
    timer_->arm_at(now() + 3 * ngtcp2_conn_get_pto(conn_.get()));
}

void Connection::notify_closed(const CloseInfo &info) {
    if (notified_closed_) return;
    notified_closed_ = true;
    if (endpoint_.observer().closed) endpoint_.observer().closed(*this, info);
}

void Connection::die(std::optional<CloseInfo> info) {
    if (state_ == State::dead) return;
    state_ = State::dead;  // first: the observer may look at (or try to close) this connection
    if (info) notify_closed(*info);
    notified_closed_ = true;
    timer_->cancel();
    app_.reset();
    for (const auto &cid : cids_) endpoint_.remove_cid(cid);
    cids_.clear();
    endpoint_.retire(this);  // freed once no callback of ours is on the stack
}

void Connection::shutdown(uint64_t app_error, std::string_view reason) {
    if (state_ == State::open) {
        ngtcp2_connection_close_error ccerr;
        ngtcp2_connection_close_error_default(&ccerr);
        ngtcp2_connection_close_error_set_application_error(
            &ccerr, app_error, reinterpret_cast<const uint8_t *>(reason.data()), reason.size());
        start_closing(&ccerr, CloseInfo{CloseKind::local, true, app_error, std::string(reason)});
    }
    die(std::nullopt);
}

// ---- timers ----

void Connection::on_timer() {
    if (state_ == State::closing || state_ == State::draining) {
        die(std::nullopt);
        return;
    }
    if (state_ != State::open) return;
    if (probe_deadline_ && now() >= probe_deadline_) {
        if (counters_.rx_datagrams == probe_rx_) {
            die(CloseInfo{CloseKind::unreachable, false, 0,
                          "nothing listens at " + remote_.to_string() + " any more"});
            return;
        }
        probe_deadline_ = 0;  // it answered: the ICMP report was stale or forged
        ngtcp2_conn_set_keep_alive_timeout(conn_.get(), transport_.keep_alive_ms * NGTCP2_MILLISECONDS);
    }
    in_callback_ = true;
    int rv = ngtcp2_conn_handle_expiry(conn_.get(), now());
    in_callback_ = false;
    note_congestion();
    if (rv != 0) {
        handle_error(rv);
        return;
    }
    write();
}

// ngtcp2 0.12 counts no lost packets; a new recovery period (on an ACK or the loss timer) is the
// loss signal it gives, so that is what is counted.
void Connection::note_congestion() {
    if (!conn_) return;
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(conn_.get(), &cs);
    if (cs.congestion_recovery_start_ts != UINT64_MAX && cs.congestion_recovery_start_ts != recovery_start_) {
        recovery_start_ = cs.congestion_recovery_start_ts;
        ++counters_.congestion_events;
    }
}

void Connection::update_timer() {
    if (state_ != State::open) return;
    uint64_t at = ngtcp2_conn_get_expiry(conn_.get());
    if (probe_deadline_) at = std::min<uint64_t>(at, probe_deadline_);
    timer_->arm_at(at);
}

void Connection::peer_unreachable() {
    if (state_ != State::open) return;
    if (!server_ && !established_) {
        die(CloseInfo{CloseKind::unreachable, false, 0, "nothing listens at " + remote_.to_string()});
        return;
    }
    if (!established_ || probe_deadline_) return;
    // Force a PING soon and give the answer a few round trips.
    uint64_t pto = ngtcp2_conn_get_pto(conn_.get());
    probe_deadline_ = now() + std::max<uint64_t>(3 * pto, 500 * NGTCP2_MILLISECONDS);
    probe_rx_ = counters_.rx_datagrams;
    ngtcp2_conn_set_keep_alive_timeout(conn_.get(), 50 * NGTCP2_MILLISECONDS);
    update_timer();
    schedule_write();
}

// ---- write path ----

bool Connection::flush(const uint8_t *data, size_t len, size_t segment) {
    size_t sent = 0;
    auto status = endpoint_.socket().send(remote_, server_ ? &local_ : nullptr, {data, len}, segment, &sent);
    counters_.tx_bytes += sent;
    counters_.tx_datagrams += (sent + segment - 1) / segment;
    if (status != net::UdpSocket::SendStatus::blocked) return true;
    tx_pending_off_ = static_cast<size_t>(data - tx_.data()) + sent;
    tx_pending_len_ = len - sent;
    tx_pending_segment_ = segment;
    endpoint_.wait_writable(this);
    return false;
}

void Connection::writable() {
    if (state_ != State::open || tx_pending_len_ == 0) return;
    const uint8_t *data = tx_.data() + tx_pending_off_;
    size_t len = tx_pending_len_;
    tx_pending_len_ = 0;
    if (flush(data, len, tx_pending_segment_)) write();
}

struct Connection::TxRound {
    ngtcp2_conn *conn;
    ngtcp2_tstamp ts;
    size_t max_udp, path_max, max_packets;
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi{};
};

void Connection::close_as_requested() {
    auto [code, reason] = std::move(*close_requested_);
    close_requested_.reset();
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    ngtcp2_connection_close_error_set_application_error(
        &ccerr, code, reinterpret_cast<const uint8_t *>(reason.data()), reason.size());
    start_closing(&ccerr, CloseInfo{CloseKind::local, true, code, reason});
}

// One packet into `out`, with as much of the application's pending data as fits: its length, 0
// when nothing can be written now, or -1 when the connection failed (already handled).
std::ptrdiff_t Connection::write_packet(TxRound &r, uint8_t *out) {
    Vec vec[16];
    for (;;) {
        Application::Chunk chunk;
        try {
            if (app_ && ngtcp2_conn_get_max_data_left(r.conn)) chunk = app_->pending(vec);
        } catch (const ApplicationError &e) {
            app_error_ = e;
            handle_error(NGTCP2_ERR_CALLBACK_FAILURE);
            return -1;
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        if (chunk.fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        ngtcp2_ssize datalen = -1;
        in_callback_ = true;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(r.conn, &r.ps.path, &r.pi, out, r.max_udp, &datalen, flags,
                                                   chunk.stream_id, reinterpret_cast<const ngtcp2_vec *>(vec),
                                                   chunk.count, r.ts);
        in_callback_ = false;
        try {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                app_->blocked(chunk.stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                app_->write_shut(chunk.stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                app_->written(chunk.stream_id, static_cast<size_t>(datalen));
                continue;
            }
            if (n < 0) {
                handle_error(static_cast<int>(n));
                return -1;
            }
            if (datalen >= 0 && app_) app_->written(chunk.stream_id, static_cast<size_t>(datalen));
        } catch (const ApplicationError &e) {
            app_error_ = e;
            handle_error(NGTCP2_ERR_CALLBACK_FAILURE);
            return -1;
        }
        return n;
    }
}

// Packets into one GSO batch (equal sizes; a shorter one ends it) and out to the socket.
Connection::RoundEnd Connection::write_round(TxRound &r) {
    uint8_t *begin = tx_.data();
    uint8_t *p = begin;
    size_t packets = 0, segment = 0;
    for (;;) {
        std::ptrdiff_t n = write_packet(r, p);
        if (n < 0) return RoundEnd::failed;
        if (n == 0) {
            bool blocked = p != begin && !flush(begin, static_cast<size_t>(p - begin), segment);
            return blocked ? RoundEnd::blocked : RoundEnd::idle;
        }
        size_t len = static_cast<size_t>(n);
        if (packets > 0 && (len > segment || (segment > r.path_max && len != segment))) {
            // This packet cannot join the batch: send the batch, then it alone. When the batch
            // is refused, the lone packet is dropped; QUIC resends it as lost.
            if (!flush(begin, static_cast<size_t>(p - begin), segment)) return RoundEnd::blocked;
            return flush(p, len, len) ? RoundEnd::full : RoundEnd::blocked;
        }
        if (packets == 0) segment = len;
        p += len;
        ++packets;
        if (packets == r.max_packets || len < segment)
            return flush(begin, static_cast<size_t>(p - begin), segment) ? RoundEnd::full : RoundEnd::blocked;
    }
}

void Connection::write() {
    if (state_ != State::open) return;
    if (close_requested_) {
        close_as_requested();
        return;
    }
    if (tx_pending_len_) return;  // the socket is full: writable() resumes

    TxRound r;
    r.conn = conn_.get();
    r.ts = now();
    r.max_udp = ngtcp2_conn_get_max_tx_udp_payload_size(r.conn);
    r.path_max = ngtcp2_conn_get_path_max_tx_udp_payload_size(r.conn);
    size_t quantum = ngtcp2_conn_get_send_quantum(r.conn);
    r.max_packets = std::clamp<size_t>(quantum / r.max_udp, 1, kMaxBatch);
    r.max_packets = std::min(r.max_packets, std::max<size_t>(1, kMaxBatchBytes / r.max_udp));
    ngtcp2_path_storage_zero(&r.ps);

    for (int round = 0; round < kMaxRounds; ++round) {
        RoundEnd end = write_round(r);
        if (end == RoundEnd::failed) return;
        // Pacing starts with the handshake done: ngtcp2 0.12 paces the first flight with the
        // 333 ms initial RTT and keeps that gap after the first real sample (measured: the
        // client's Finished and first request sat ~20 ms on loopback). The handshake is a few
        // packets under the congestion window anyway.
        if (ngtcp2_conn_get_handshake_completed(r.conn)) ngtcp2_conn_update_pkt_tx_time(r.conn, r.ts);
        if (end != RoundEnd::full || state_ != State::open) break;
    }
    after_callbacks();
    update_timer();
}

int Connection::verify_peer() {
    if (!pin_) return 0;
    unsigned count = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(tls_.get(), &count);
    std::string detail;
    if (!certs || count == 0) {
        detail = "the host presented no certificate";
    } else {
        try {
            Fingerprint got = certificate_fingerprint({certs[0].data, certs[0].size});
            if (got == *pin_) return 0;
            detail = "host key " + to_hex(got).substr(0, 16) + "… is not the key the ticket pins (" +
                     to_hex(*pin_).substr(0, 16) + "…)";
        } catch (const Error &e) {
            detail = std::string("the host's certificate does not parse: ") + e.what();
        }
    }
    key_mismatch_ = true;
    key_mismatch_detail_ = detail;
    return GNUTLS_E_CERTIFICATE_ERROR;
}

} // namespace pp::quic
