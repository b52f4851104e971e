// quic/endpoint: every QUIC connection on one UDP socket. Routes datagrams to connections by
// destination connection ID (so a server holds many viewers and a client may race several
// handshakes on one socket), accepts new connections when listening, and runs the write passes
// and retirements that must wait until no ngtcp2 callback is on the stack. Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "identity/identity.hpp"
#include "net/handle.hpp"
#include "net/loop.hpp"
#include "net/udp.hpp"
#include "quic/connection.hpp"

struct ngtcp2_pkt_hd;

namespace pp::quic {

struct Observer {
    // The handshake completed (for a client: the server proved the pinned key).
    std::function<void(Connection &)> established;
    // The connection ended; its Application still exists during this call and goes right after.
    std::function<void(Connection &, const CloseInfo &)> closed;
};

struct ServerOptions {
    std::shared_ptr<const Identity> identity;  // certificate and key presented to clients
    AppFactory make_app;
    TransportOptions transport;
    size_t max_connections = 256;  // beyond this, new handshakes are ignored
    // Limits before authentication (docs/SECURITY.md). Once `retry_threshold` handshakes are in
    // progress, a new Initial without a valid Retry token gets a stateless Retry instead of a
    // connection, so Initials from spoofed addresses hold no state. Connections the application
    // has not authenticated (mark_authenticated) are capped in total and per source address.
    size_t retry_threshold = 16;
    size_t max_unauthenticated = 64;
    size_t max_unauthenticated_per_source = 8;
};

struct ClientOptions {
    Fingerprint pin;  // SHA-256 of the server's SubjectPublicKeyInfo, from the ticket
    AppFactory make_app;
    TransportOptions transport;
    std::string alpn{kAlpn};  // only tests offer anything else (to see it refused)
};

class Endpoint {
public:
    Endpoint(net::Loop &loop, std::unique_ptr<net::UdpSocket> socket, Observer observer);
    // Closes every connection (CONNECTION_CLOSE with H3_NO_ERROR) without waiting.
    ~Endpoint();
    Endpoint(const Endpoint &) = delete;
    Endpoint &operator=(const Endpoint &) = delete;

    // Starts accepting connections.
    void listen(ServerOptions options);
    // Starts a handshake with `remote` (any form: IPv4 is mapped for a dual-stack socket).
    // Throws pp::Error(PP_ERR_UNREACHABLE) when this socket cannot reach that address family.
    Connection &connect(const net::Address &remote, ClientOptions options);

    net::UdpSocket &socket() { return *socket_; }
    net::Loop &loop() { return loop_; }
    // Open connections (not closing), oldest first.
    std::vector<Connection *> connections() const;
    Connection *find(uint64_t id) const;
    // Closes every connection now with `app_error`.
    void close_all(uint64_t app_error, std::string_view reason);

    // The application accepted this connection's credentials: it leaves the pre-auth limits.
    void mark_authenticated(uint64_t id);
    // Open connections the application has not authenticated (handshaking ones included).
    size_t unauthenticated() const;

    struct Counters {
        uint64_t accepted = 0, refused_full = 0, unroutable = 0;
        uint64_t retries_sent = 0, bad_tokens = 0, refused_source = 0, refused_unauthenticated = 0;
    };
    const Counters &counters() const { return counters_; }

    // ---- for Connection ----
    const Observer &observer() const { return observer_; }
    const std::vector<uint8_t> &static_secret() const { return static_secret_; }
    void add_cid(const std::string &cid, Connection *conn);
    void remove_cid(const std::string &cid);
    void schedule_write(Connection *conn);  // write pass after the current callbacks
    void wait_writable(Connection *conn);   // the socket is full; call writable() later
    void retire(Connection *conn);          // destroy after the current callbacks

private:
    void on_datagram(const net::Datagram &d);
    void accept(const net::Datagram &d);
    // What the pre-auth limits say about a new Initial from `remote` (see ServerOptions).
    enum class Admit { accept, retry, refuse };
    Admit admission(const net::Address &remote, bool validated);
    void send_retry(const net::Datagram &d, const ngtcp2_pkt_hd &hd);
    void flush();
    void on_writable();
    void arm_idle();
    static void on_idle(uv_idle_t *handle);

    net::Loop &loop_;
    std::unique_ptr<net::UdpSocket> socket_;
    Observer observer_;
    std::unique_ptr<ServerOptions> server_;
    std::vector<uint8_t> static_secret_;
    std::shared_ptr<void> client_credentials_;

    uint64_t next_id_ = 1;
    std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
    std::unordered_map<std::string, Connection *> by_cid_;
    std::unordered_set<uint64_t> authenticated_;
    std::vector<uint64_t> write_queue_;
    std::vector<uint64_t> blocked_;
    std::vector<std::unique_ptr<Connection>> graveyard_;
    net::Handle<uv_idle_t> idle_;
    bool idle_active_ = false;
    bool flushing_ = false;
    Counters counters_;
};

} // namespace pp::quic
