#include "quic/endpoint.hpp"

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/random.hpp"

namespace pp::quic {

namespace {

constexpr size_t kCidLen = 16;  // the length of every source connection ID we issue
constexpr uint64_t kRetryTokenLifetime = 10 * NGTCP2_SECONDS;

std::string random_cid(size_t len) {
    std::string cid(len, '\0');
    gnutls_rnd(GNUTLS_RND_NONCE, cid.data(), cid.size());
    return cid;
}

} // namespace

Endpoint::Endpoint(net::Loop &loop, std::unique_ptr<net::UdpSocket> socket, Observer observer)
    : loop_(loop), socket_(std::move(socket)), observer_(std::move(observer)), static_secret_(32) {
    random_bytes(static_secret_);
    gnutls_certificate_credentials_t creds = nullptr;
    if (int rc = gnutls_certificate_allocate_credentials(&creds); rc < 0)
        throw Error(PP_ERR_CRYPTO, std::string("TLS credentials: ") + gnutls_strerror(rc));
    client_credentials_ = std::shared_ptr<void>(creds, [](void *c) {
        gnutls_certificate_free_credentials(static_cast<gnutls_certificate_credentials_t>(c));
    });
    int rc = uv_idle_init(loop_.uv(), idle_.get());
    if (rc < 0) throw Error(PP_ERR_IO, std::string("idle handle: ") + uv_strerror(rc));
    idle_.initialized();
    idle_.get()->data = this;
    socket_->set_quic_handler([this](const net::Datagram &d) { on_datagram(d); });
    socket_->set_batch_end([this] { flush(); });
    socket_->set_writable([this] { on_writable(); });
    socket_->set_unreachable([this](const net::Address &remote) {
        std::vector<Connection *> hit;
        for (const auto &[id, conn] : connections_)
            if (!conn->closed() && conn->remote() == remote) hit.push_back(conn.get());
        for (auto *c : hit) c->peer_unreachable();
    });
}

Endpoint::~Endpoint() {
    observer_ = {};  // the owner is going away: no more events
    flushing_ = true;
    close_all(0x100, "");  // H3_NO_ERROR
    graveyard_.clear();
    connections_.clear();
    socket_->set_quic_handler(nullptr);
    socket_->set_batch_end(nullptr);
    socket_->set_writable(nullptr);
    socket_->set_unreachable(nullptr);
}

void Endpoint::listen(ServerOptions options) {
    if (!options.identity) throw Error(PP_ERR_INVALID_ARGUMENT, "a QUIC server needs an identity");
    server_ = std::make_unique<ServerOptions>(std::move(options));
}

Connection &Endpoint::connect(const net::Address &remote, ClientOptions options) {
    net::Address target = socket_->sendable(remote);
    if (target.empty())
        throw Error(PP_ERR_UNREACHABLE, "cannot reach " + remote.to_string() + ": no " +
                                            (remote.family() == AF_INET6 ? "IPv6" : "IPv4") +
                                            " on this socket");
    Connection::Params p;
    p.server = false;
    p.dcid = random_cid(18);
    p.scid = random_cid(kCidLen);
    p.version = NGTCP2_PROTO_VER_V1;
    p.local = socket_->local_address();
    p.remote = target;
    p.credentials = static_cast<gnutls_certificate_credentials_t>(client_credentials_.get());
    p.pin = options.pin;
    p.alpn = options.alpn;
    p.make_app = std::move(options.make_app);
    p.transport = options.transport;
    uint64_t id = next_id_++;
    auto conn = std::make_unique<Connection>(*this, id, p);
    Connection &ref = *conn;
    connections_.emplace(id, std::move(conn));
    schedule_write(&ref);  // the Initial goes out on the next pass
    return ref;
}

std::vector<Connection *> Endpoint::connections() const {
    std::vector<Connection *> out;
    for (const auto &[id, conn] : connections_)
        if (!conn->closed()) out.push_back(conn.get());
    std::sort(out.begin(), out.end(), [](Connection *a, Connection *b) { return a->id() < b->id(); });
    return out;
}

Connection *Endpoint::find(uint64_t id) const {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
}

void Endpoint::close_all(uint64_t app_error, std::string_view reason) {
    std::vector<uint64_t> ids;
    for (const auto &[id, conn] : connections_) ids.push_back(id);
    for (uint64_t id : ids)
        if (Connection *c = find(id)) c->shutdown(app_error, reason);
    arm_idle();
}

void Endpoint::add_cid(const std::string &cid, Connection *conn) {
    by_cid_[cid] = conn;
}

void Endpoint::remove_cid(const std::string &cid) {
    auto it = by_cid_.find(cid);
    if (it != by_cid_.end()) by_cid_.erase(it);
}

void Endpoint::schedule_write(Connection *conn) {
    if (conn->write_scheduled_) return;
    conn->write_scheduled_ = true;
    write_queue_.push_back(conn->id());
    arm_idle();
}

void Endpoint::wait_writable(Connection *conn) {
    if (std::find(blocked_.begin(), blocked_.end(), conn->id()) == blocked_.end())
        blocked_.push_back(conn->id());
}

void Endpoint::retire(Connection *conn) {
    auto it = connections_.find(conn->id());
    if (it == connections_.end()) return;
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
    authenticated_.erase(conn->id());
    arm_idle();
}

void Endpoint::on_datagram(const net::Datagram &d) {
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid(&vc, d.data.data(), d.data.size(), kCidLen);
    if (rv != 0) {
        // Garbage, or a QUIC version we do not speak (every peer of ours speaks v1).
        ++counters_.unroutable;
        return;
    }
    std::string key(reinterpret_cast<const char *>(vc.dcid), vc.dcidlen);
    if (auto it = by_cid_.find(key); it != by_cid_.end()) {
        it->second->receive(d);
        return;
    }
    if (server_ && (d.data[0] & 0x80)) {
        accept(d);
        return;
    }
    ++counters_.unroutable;
}

void Endpoint::accept(const net::Datagram &d) {
    ngtcp2_pkt_hd hd;
    if (ngtcp2_accept(&hd, d.data.data(), d.data.size()) != 0) {
        ++counters_.unroutable;  // not an Initial that could start a connection
        return;
    }
    // A Retry token proves the sender receives at its address: it cannot be a spoofed flood.
    std::string original_dcid(reinterpret_cast<const char *>(hd.dcid.data), hd.dcid.datalen), retry_scid, token;
    if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
        ngtcp2_cid odcid;
        if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len, static_secret_.data(),
                                             static_secret_.size(), hd.version, d.remote.sa(), d.remote.len(),
                                             &hd.dcid, kRetryTokenLifetime, net::monotonic_ns()) != 0) {
            ++counters_.bad_tokens;
            return;
        }
        retry_scid = original_dcid;
        original_dcid.assign(reinterpret_cast<const char *>(odcid.data), odcid.datalen);
        token.assign(reinterpret_cast<const char *>(hd.token.base), hd.token.len);
    }
    switch (admission(d.remote, !retry_scid.empty())) {
    case Admit::refuse: return;
    case Admit::retry: send_retry(d, hd); return;
    case Admit::accept: break;
    }
    Connection::Params p;
    p.server = true;
    p.dcid.assign(reinterpret_cast<const char *>(hd.scid.data), hd.scid.datalen);
    p.original_dcid = std::move(original_dcid);
    p.retry_scid = std::move(retry_scid);
    p.token = std::move(token);
    p.scid = random_cid(kCidLen);
    p.version = hd.version;
    p.local = d.local;
    p.remote = d.remote;
    p.credentials = server_->identity->credentials();
    p.make_app = server_->make_app;
    p.transport = server_->transport;
    std::unique_ptr<Connection> conn;
    try {
        conn = std::make_unique<Connection>(*this, next_id_++, p);
    } catch (const std::exception &) {
        ++counters_.unroutable;
        return;
    }
    Connection &ref = *conn;
    connections_.emplace(ref.id(), std::move(conn));
    ++counters_.accepted;
    ref.receive(d);
}

Endpoint::Admit Endpoint::admission(const net::Address &remote, bool validated) {
    size_t open = 0, handshaking = 0, unauthenticated = 0, from_source = 0;
    const std::string source = remote.ip();
    for (const auto &[id, conn] : connections_) {
        if (conn->closed()) continue;
        ++open;
        handshaking += conn->established() ? 0 : 1;
        if (authenticated_.count(id)) continue;
        ++unauthenticated;
        if (conn->remote().ip() == source) ++from_source;
    }
    if (open >= server_->max_connections) {
        ++counters_.refused_full;
        return Admit::refuse;
    }
    if (!validated && handshaking >= server_->retry_threshold) return Admit::retry;
    if (from_source >= server_->max_unauthenticated_per_source) {
        ++counters_.refused_source;
        return Admit::refuse;
    }
    if (unauthenticated >= server_->max_unauthenticated) {
        ++counters_.refused_unauthenticated;
        return Admit::refuse;
    }
    return Admit::accept;
}

void Endpoint::send_retry(const net::Datagram &d, const ngtcp2_pkt_hd &hd) {
    std::string scid = random_cid(kCidLen);
    ngtcp2_cid retry_scid;
    ngtcp2_cid_init(&retry_scid, reinterpret_cast<const uint8_t *>(scid.data()), scid.size());
    uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
    ngtcp2_ssize tokenlen = ngtcp2_crypto_generate_retry_token(
        token, static_secret_.data(), static_secret_.size(), hd.version, d.remote.sa(), d.remote.len(),
        &retry_scid, &hd.dcid, net::monotonic_ns());
    if (tokenlen < 0) return;
    uint8_t packet[1200];  // a Retry is at most ~200 bytes: no amplification
    ngtcp2_ssize n = ngtcp2_crypto_write_retry(packet, sizeof packet, hd.version, &hd.scid, &retry_scid, &hd.dcid,
                                               token, static_cast<size_t>(tokenlen));
    if (n < 0) return;
    ++counters_.retries_sent;
    (void)socket_->send(d.remote, &d.local, {packet, static_cast<size_t>(n)}, static_cast<size_t>(n));
}

size_t Endpoint::unauthenticated() const {
    size_t n = 0;
    for (const auto &[id, conn] : connections_) n += !conn->closed() && !authenticated_.count(id);
    return n;
}

void Endpoint::mark_authenticated(uint64_t id) {
    if (connections_.count(id)) authenticated_.insert(id);
}

void Endpoint::arm_idle() {
    if (idle_active_) return;
    idle_active_ = true;
    uv_idle_start(idle_.get(), &Endpoint::on_idle);
}

void Endpoint::on_idle(uv_idle_t *handle) {
    if (auto *self = static_cast<Endpoint *>(handle->data)) self->flush();
}

void Endpoint::flush() {
    if (flushing_) return;
    flushing_ = true;
    // Writes may queue more writes (a stream resumed by an acknowledgement): bounded rounds, the
    // rest on the next loop iteration.
    for (int round = 0; round < 4 && !write_queue_.empty(); ++round) {
        std::vector<uint64_t> queue;
        queue.swap(write_queue_);
        for (uint64_t id : queue) {
            Connection *c = find(id);
            if (!c) continue;
            c->write_scheduled_ = false;
            c->write();
        }
    }
    graveyard_.clear();
    flushing_ = false;
    if (write_queue_.empty() && graveyard_.empty() && idle_active_) {
        idle_active_ = false;
        uv_idle_stop(idle_.get());
    }
}

void Endpoint::on_writable() {
    std::vector<uint64_t> waiting;
    waiting.swap(blocked_);
    for (uint64_t id : waiting)
        if (Connection *c = find(id)) c->writable();
    flush();
}

} // namespace pp::quic
