// quic/connection: one QUIC connection (ngtcp2 + GnuTLS, TLS 1.3 only, ALPN "pixelpass/1") on an
// Endpoint's socket: packets in, packets out in GSO batches, its timers, its close. The
// Application (HTTP/3) rides on it. Lives on the loop thread; created and destroyed by Endpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "identity/identity.hpp"
#include "net/address.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"
#include "quic/application.hpp"

struct ngtcp2_conn;
struct gnutls_session_int;

namespace pp::quic {

inline constexpr std::string_view kAlpn = "pixelpass/1";

// The sender's congestion controller (ngtcp2's). Loss-based CUBIC and Reno read every lost packet
// as congestion, so random loss (Wi-Fi, LTE) caps them near the Mathis bound; BBR and BBRv2 model
// the path's bandwidth and RTT instead. The default is BBRv2: at 2 % loss and 100 ms RTT a
// 6 Mbit/s stream arrives whole over BBR/BBRv2 and at 1.2 Mbit/s over CUBIC (docs/BENCHMARKS.md).
enum class CongestionControl { cubic, reno, bbr, bbr2 };
inline constexpr CongestionControl kDefaultCongestionControl = CongestionControl::bbr2;
const char *congestion_control_name(CongestionControl cc);
// "cubic", "reno", "bbr", "bbr2" (any case); nullopt for anything else.
std::optional<CongestionControl> parse_congestion_control(std::string_view name);

// Sizes and timers of a connection. Windows are sized for video: the receive window must cover
// the bandwidth-delay product (8 MiB is 67 ms at 1 Gbit/s); ngtcp2 grows them up to the max_*
// values when the reader keeps up.
struct TransportOptions {
    uint64_t idle_timeout_ms = 30000;  // closed after this long without a packet from the peer
    uint64_t keep_alive_ms = 15000;    // PING when idle this long (keeps NAT mappings, too)
    uint64_t handshake_timeout_ms = 10000;
    uint64_t conn_window = 16u << 20;
    uint64_t stream_window = 8u << 20;
    uint64_t max_conn_window = 64u << 20;
    uint64_t max_stream_window = 32u << 20;
    uint64_t max_streams_bidi = 32;  // requests the peer may have open at once
    uint64_t max_streams_uni = 8;    // HTTP/3 needs 3 (control, QPACK encoder and decoder)
    // Largest UDP payload we send (0 = ngtcp2's default, 1452 after path MTU discovery). A
    // connection that may move onto a TURN relay stays below the relay's framing overhead.
    size_t max_udp_payload = 0;
    CongestionControl congestion_control = kDefaultCongestionControl;
};

// Why a connection ended.
enum class CloseKind {
    local,              // we closed it (close(), endpoint shut down)
    peer,               // the peer sent CONNECTION_CLOSE
    idle_timeout,       // nothing heard for idle_timeout_ms
    handshake_timeout,  // no handshake within handshake_timeout_ms
    key_mismatch,       // client: the server's key is not the pinned one
    handshake_failed,   // other TLS failures (no common ALPN, bad messages)
    unreachable,        // ICMP says nothing listens at the peer's address any more (confirmed)
    error               // protocol or internal error
};

struct CloseInfo {
    CloseKind kind = CloseKind::local;
    bool application = false;  // `code` is an application (HTTP/3) error code, not a transport one
    uint64_t code = 0;
    std::string detail;
};

const char *close_kind_name(CloseKind kind);

class Endpoint;
class Connection;
struct ConnRef;

using AppFactory = std::function<std::unique_ptr<Application>(Connection &)>;

class Connection {
public:
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    uint64_t id() const { return id_; }        // unique per endpoint, never reused
    bool is_server() const { return server_; }
    const net::Address &remote() const { return remote_; }
    const net::Address &local() const { return local_; }  // our side of the path ngtcp2 knows
    bool established() const { return established_; }
    bool closed() const { return state_ != State::open; }
    Application *app() const { return app_.get(); }

    // ---- for the Application (inside its callbacks too) ----
    int64_t open_bidi_stream();  // -1 when the peer's stream limit is reached
    int64_t open_uni_stream();   // -1 likewise
    // Gives `bytes` of consumed stream data back to the peer's flow control.
    void credit(int64_t stream_id, uint64_t bytes);
    void shutdown_stream(int64_t stream_id, uint64_t app_error);        // both directions
    void shutdown_stream_read(int64_t stream_id, uint64_t app_error);   // STOP_SENDING
    void shutdown_stream_write(int64_t stream_id, uint64_t app_error);  // RESET_STREAM
    void extend_max_streams_bidi(uint64_t n);
    uint64_t local_max_streams_bidi() const;  // what we allowed the peer at the start
    uint64_t uni_streams_left() const;        // how many more we may open
    bool is_local_stream(int64_t stream_id) const;
    static bool is_bidi_stream(int64_t stream_id);
    // Asks for a write pass soon (after the current callback). Thread: loop only.
    void schedule_write();

    // Closes with an application error (0x100 is HTTP/3's H3_NO_ERROR). Deferred to a safe point
    // when called from inside a callback; the observer's `closed` runs then.
    void close(uint64_t app_error, std::string reason = {});

    struct Stats {
        double rtt_ms = 0, min_rtt_ms = 0;
        uint64_t cwnd = 0, bytes_in_flight = 0;
        uint64_t tx_bytes = 0, rx_bytes = 0, tx_datagrams = 0, rx_datagrams = 0;
        uint64_t max_udp_payload = 0;
        double delivery_rate_bps = 0;
        double pacing_rate_bps = 0;
        uint64_t congestion_events = 0;  // loss-triggered recovery periods (ngtcp2 counts no losses)
    };
    Stats stats() const;
    // Packets carrying this stream's data that ngtcp2 declared lost (spurious losses included;
    // 0 once the stream is gone). ngtcp2 0.12 has no connection-wide loss counter.
    uint64_t stream_lost_packets(int64_t stream_id) const;

    // ---- for Endpoint ----
    struct Params {
        bool server = false;
        std::string dcid, scid, original_dcid;  // raw connection IDs
        // Server after a Retry: the Retry's source CID and the token that proved the address.
        std::string retry_scid, token;
        uint32_t version = 0;
        net::Address local, remote;
        gnutls_certificate_credentials_t credentials = nullptr;
        std::optional<Fingerprint> pin;  // client: the server key to insist on
        std::string alpn{kAlpn};         // client: the protocol offered
        AppFactory make_app;
        TransportOptions transport;
    };
    Connection(Endpoint &endpoint, uint64_t id, const Params &params);
    void receive(const net::Datagram &datagram);
    void write();
    void writable();  // the socket accepts data again after a blocked send
    void shutdown(uint64_t app_error, std::string_view reason);  // immediate local close
    // An ICMP error named our peer's address. Before the handshake (client) the attempt fails at
    // once; afterwards the peer gets a short chance to prove it is alive (a PING is forced), and
    // the connection ends only if nothing comes back — forged ICMP cannot cut a live connection.
    void peer_unreachable();
    const std::vector<std::string> &cids() const { return cids_; }

private:
    enum class State { open, closing, draining, dead };
    struct Callbacks;
    friend struct Callbacks;
    friend class Endpoint;

    // The constructor's steps: ngtcp2's connection, then the TLS session attached to it.
    void create_conn(const Params &p);
    void create_tls(const Params &p);

    void handle_error(int liberr);
    void start_closing(const void *ccerr_opaque, CloseInfo info);
    void start_draining();
    void die(std::optional<CloseInfo> info);
    void notify_closed(const CloseInfo &info);
    void on_timer();
    void update_timer();
    bool flush(const uint8_t *data, size_t len, size_t segment);
    // write()'s steps. TxRound holds one pass's limits and ngtcp2 scratch (defined in the .cpp).
    struct TxRound;
    enum class RoundEnd { full, idle, blocked, failed };
    void close_as_requested();
    std::ptrdiff_t write_packet(TxRound &r, uint8_t *out);
    RoundEnd write_round(TxRound &r);
    int verify_peer();
    void after_callbacks();
    void note_congestion();

    Endpoint &endpoint_;
    const uint64_t id_;
    const bool server_;
    net::Address local_, remote_;  // the path ngtcp2 knows
    State state_ = State::open;
    bool established_ = false, announce_established_ = false, notified_closed_ = false;
    bool in_callback_ = false, write_scheduled_ = false;
    std::optional<std::pair<uint64_t, std::string>> close_requested_;
    std::optional<Fingerprint> pin_;
    bool key_mismatch_ = false;
    std::string key_mismatch_detail_;
    std::string handshake_error_;
    std::optional<ApplicationError> app_error_;

    std::unique_ptr<ngtcp2_conn, void (*)(ngtcp2_conn *)> conn_;
    std::unique_ptr<gnutls_session_int, void (*)(gnutls_session_int *)> tls_;
    std::unique_ptr<ConnRef> conn_ref_;
    AppFactory make_app_;
    std::unique_ptr<Application> app_;
    TransportOptions transport_;
    std::unique_ptr<net::Timer> timer_;

    std::vector<std::string> cids_;  // our source CIDs registered at the endpoint
    std::vector<uint8_t> tx_;        // one GSO batch
    size_t tx_pending_off_ = 0, tx_pending_len_ = 0, tx_pending_segment_ = 0;
    std::vector<uint8_t> close_packet_;
    uint64_t close_rx_count_ = 0;
    uint64_t probe_deadline_ = 0;  // confirming an ICMP report: gone unless a packet comes first
    uint64_t probe_rx_ = 0;
    Stats counters_;
    uint64_t recovery_start_ = UINT64_MAX;  // ngtcp2's last congestion_recovery_start_ts
};

} // namespace pp::quic
