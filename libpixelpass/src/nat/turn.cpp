#include "nat/turn.hpp"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "common/error.hpp"

namespace pp::nat {

namespace {
constexpr uint64_t kMs = 1000000;
constexpr uint32_t kUdpTransport = 17u << 24;  // REQUESTED-TRANSPORT: UDP
constexpr unsigned kPermissionRefreshMs = 240000;  // permissions live 300 s
constexpr unsigned kKeepaliveMs = 20000;

std::string base64(std::span<const uint8_t> data) {
    static const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < data.size(); i += 3) {
        uint32_t v = uint32_t{data[i]} << 16;
        if (i + 1 < data.size()) v |= uint32_t{data[i + 1]} << 8;
        if (i + 2 < data.size()) v |= data[i + 2];
        out += t[v >> 18 & 63];
        out += t[v >> 12 & 63];
        out += i + 1 < data.size() ? t[v >> 6 & 63] : '=';
        out += i + 2 < data.size() ? t[v & 63] : '=';
    }
    return out;
}

net::Address ip_only(const net::Address &a) {
    net::Address r = a.unmapped();
    r.set_port(0);
    return r;
}
} // namespace

RestCredentials rest_credentials(std::string_view secret, int64_t expiry_unix, std::string_view user) {
    RestCredentials c;
    c.username = std::to_string(expiry_unix) + ":" + std::string(user);
    uint8_t mac[20];
    gnutls_hmac_fast(GNUTLS_MAC_SHA1, secret.data(), secret.size(), c.username.data(), c.username.size(), mac);
    c.password = base64(mac);
    return c;
}

std::pair<std::string, uint16_t> parse_relay(const std::string &spec) {
    std::string s = spec;
    if (s.rfind("turns:", 0) == 0)
        throw Error(PP_ERR_UNSUPPORTED, "'" + spec + "': TURN over TLS (turns:) is not supported; use turn:HOST[:PORT]");
    if (s.rfind("turn:", 0) == 0) s = s.substr(5);
    if (auto q = s.find('?'); q != std::string::npos) s = s.substr(0, q);  // ?transport=udp
    std::string host = s;
    long port = 3478;
    auto bad = [&] {
        return Error(PP_ERR_INVALID_ARGUMENT, "relay '" + spec + "' is not turn:HOST[:PORT] (e.g. turn:relay.example.org:3478)");
    };
    if (!s.empty() && s[0] == '[') {
        size_t close = s.find(']');
        if (close == std::string::npos) throw bad();
        host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') throw bad();
            char *end = nullptr;
            port = std::strtol(s.c_str() + close + 2, &end, 10);
            if (*end) throw bad();
        }
    } else if (auto colon = s.find(':'); colon != std::string::npos) {
        if (s.find(':', colon + 1) != std::string::npos) throw bad();
        host = s.substr(0, colon);
        char *end = nullptr;
        port = std::strtol(s.c_str() + colon + 1, &end, 10);
        if (*end || colon + 1 == s.size()) throw bad();
    }
    if (host.empty() || port <= 0 || port > 65535) throw bad();
    return {host, static_cast<uint16_t>(port)};
}

TurnClient::TurnClient(Agent &agent, net::UdpSocket &socket, net::Loop &loop, TurnConfig config)
    : agent_(agent), socket_(socket), loop_(loop), config_(std::move(config)) {
    config_.server = config_.server.unmapped();
    agent_.set_listener([this](const stun::Message &m, const net::Datagram &d) { return on_message(m, d); });
}

TurnClient::~TurnClient() {
    *alive_ = false;
    agent_.set_listener(nullptr);
    for (const auto &r : routes_) socket_.set_route(r, nullptr);
    if (allocated()) {
        // Best effort, unanswered: frees the relay's port now instead of at expiry.
        auto tid = stun::new_transaction_id();
        stun::Builder b(stun::Method::refresh, stun::Class::request, tid);
        b.add_u32(stun::attr::lifetime, 0);
        agent_.send(config_.server, signed_request(b, auth_));
    }
}

std::vector<uint8_t> TurnClient::signed_request(stun::Builder &b, const Auth &auth) {
    if (auth.key.empty()) return b.finish();
    b.add(stun::attr::username, config_.username);
    b.add(stun::attr::realm, auth.realm);
    b.add(stun::attr::nonce, auth.nonce);
    return b.finish(auth.key);
}

void TurnClient::request(stun::Method method, std::function<void(stun::Builder &)> fill, Reply reply,
                         unsigned timeout_ms, std::shared_ptr<const Auth> retry) {
    auto tid = stun::new_transaction_id();
    stun::Builder b(method, stun::Class::request, tid);
    if (fill) fill(b);
    Auth used = retry ? *retry : auth_;
    auto wire = signed_request(b, used);
    auto alive = alive_;
    // The agent hands us only the answer to this transaction, from the relay's address.
    agent_.transact(config_.server, std::move(wire), tid,
                    [this, alive, used, retried = retry != nullptr, method, fill, reply, timeout_ms](const stun::Message *m) {
                        if (*alive) answered(m, used, retried, method, fill, reply, timeout_ms);
                    },
                    timeout_ms);
}

void TurnClient::answered(const stun::Message *m, const Auth &used, bool retried, stun::Method method,
                          std::function<void(stun::Builder &)> fill, Reply reply, unsigned timeout_ms) {
    int code = m && m->cls == stun::Class::error ? m->error_code() : 0;
    // 401 to an unsigned request, or 438 (stale nonce): they come unsigned by design (RFC 8489
    // 9.2.4), so anybody who saw the transaction id could have sent one. Their nonce (and, on the
    // first 401, realm) is tried for this request only, once; a realm other than the one we
    // signed with is refused.
    if (!retried && ((code == 401 && used.key.empty()) || code == 438)) {
        std::string realm = m->text(stun::attr::realm), nonce = m->text(stun::attr::nonce);
        if (!used.realm.empty() && realm != used.realm) {
            ++counters_.realm_refused;
            problem_ = "relay " + config_.label + " answered with another realm (\"" + realm + "\", not \"" +
                       used.realm + "\"): refused";
            reply(nullptr);
            return;
        }
        if (!realm.empty() && !nonce.empty()) {
            auto next = std::make_shared<Auth>(Auth{realm, nonce, stun::long_term_key(config_.username, realm, config_.password)});
            request(method, fill, reply, timeout_ms, next);
            return;
        }
    }
    // Every other answer to a signed request must be signed by the relay (RFC 8489 9.2.5): one
    // that is not may be anybody's, and counts as no answer. Only 401 and 438 say the relay could
    // not check our signature, so they cannot carry one: a refusal, never a grant.
    bool unsignable = code == 401 || code == 438;
    if (m && !used.key.empty() && !unsignable && !m->integrity_ok(used.key)) {
        ++counters_.unauthenticated;
        problem_ = "relay " + config_.label + " sent an answer without its MESSAGE-INTEGRITY (ignored)";
        m = nullptr;
    }
    if (m && retried && !unsignable) auth_ = used;  // signed by the relay: the realm and nonce are its
    reply(m);
}

void TurnClient::allocate(Done done, unsigned timeout_ms) {
    auto alive = alive_;
    problem_.clear();
    request(
        stun::Method::allocate, [](stun::Builder &b) { b.add_u32(stun::attr::requested_transport, kUdpTransport); },
        [this, alive, done](const stun::Message *m) {
            if (!m) {
                if (!problem_.empty())
                    done(PP_ERR_PROTOCOL, problem_);
                else
                    done(PP_ERR_UNREACHABLE, "relay " + config_.label + " does not answer (is it running, and is UDP to it allowed?)");
                return;
            }
            if (m->cls == stun::Class::error) {
                std::string reason;
                int code = m->error_code(&reason);
                if (code == 401)
                    done(PP_ERR_TICKET_REJECTED, "relay " + config_.label +
                                                     " rejected the credentials (401 " + reason +
                                                     "): check the relay secret or username/password");
                else
                    done(PP_ERR_PROTOCOL, "relay " + config_.label + " refused the allocation (" +
                                              std::to_string(code) + " " + reason + ")");
                return;
            }
            auto relayed = m->xor_address(stun::attr::xor_relayed_address);
            if (!relayed || !m->integrity_ok(auth_.key)) {
                done(PP_ERR_PROTOCOL, "relay " + config_.label + " sent an allocation answer that does not check out");
                return;
            }
            relayed_ = relayed->unmapped();
            if (auto mapped = m->xor_address(stun::attr::xor_mapped_address)) mapped_ = mapped->unmapped();
            lifetime_s_ = m->u32(stun::attr::lifetime).value_or(600);
            refresh_timer_ = std::make_unique<net::Timer>(loop_, [this] { refresh(); });
            uint64_t in = std::max<uint64_t>(lifetime_s_ > 120 ? lifetime_s_ - 60 : lifetime_s_ / 2, 5);
            refresh_timer_->arm_at(net::monotonic_ns() + in * 1000 * kMs);
            // The allocation lives for minutes, but a NAT forgets an idle mapping to the relay
            // after 30-120 s: a Binding every 20 s keeps it (and the relay answers it).
            keepalive_timer_ = std::make_unique<net::Timer>(loop_, [this] { keepalive(); });
            keepalive_timer_->arm_at(net::monotonic_ns() + kKeepaliveMs * kMs);
            permission_timer_ = std::make_unique<net::Timer>(loop_, [this] { refresh_permissions(); });
            permission_timer_->arm_at(net::monotonic_ns() + kPermissionRefreshMs * kMs);
            done(PP_OK, "");
        },
        timeout_ms);
}

void TurnClient::refresh() {
    ++counters_.refreshes;
    auto alive = alive_;
    request(
        stun::Method::refresh, [this](stun::Builder &b) { b.add_u32(stun::attr::lifetime, lifetime_s_); },
        [this, alive](const stun::Message *m) {
            if (!*alive) return;
            if (m && m->cls == stun::Class::success) lifetime_s_ = m->u32(stun::attr::lifetime).value_or(lifetime_s_);
            uint64_t in = std::max<uint64_t>(lifetime_s_ > 120 ? lifetime_s_ - 60 : lifetime_s_ / 2, 5);
            // An unanswered refresh is retried sooner, while the allocation still lives.
            if (!m || m->cls != stun::Class::success) in = 10;
            refresh_timer_->arm_at(net::monotonic_ns() + in * 1000 * kMs);
        },
        5000);
}

void TurnClient::permit(const net::Address &peer) {
    net::Address ip = ip_only(peer);
    auto held = std::find_if(permitted_.begin(), permitted_.end(), [&](const auto &p) { return p.first == ip; });
    if (held != permitted_.end()) {
        ++held->second;
        return;  // the permission exists and is refreshed
    }
    permitted_.emplace_back(ip, 1);
    request(
        stun::Method::create_permission,
        [peer](stun::Builder &b) { b.add_xor_address(stun::attr::xor_peer_address, peer); },
        [](const stun::Message *) {}, 5000);
}

void TurnClient::keepalive() {
    ++counters_.keepalives;
    auto tid = stun::new_transaction_id();
    agent_.transact(config_.server, stun::Builder(stun::Method::binding, stun::Class::request, tid).finish(), tid,
                    [](const stun::Message *) {}, 5000);
    keepalive_timer_->arm_at(net::monotonic_ns() + kKeepaliveMs * kMs);
}

void TurnClient::unpermit(const net::Address &peer) {
    net::Address ip = ip_only(peer);
    auto held = std::find_if(permitted_.begin(), permitted_.end(), [&](const auto &p) { return p.first == ip; });
    if (held != permitted_.end() && --held->second == 0) permitted_.erase(held);
}

void TurnClient::refresh_permissions() {
    for (const auto &held : permitted_) {
        net::Address peer = held.first;
        request(
            stun::Method::create_permission,
            [peer](stun::Builder &b) { b.add_xor_address(stun::attr::xor_peer_address, peer); },
            [](const stun::Message *) {}, 5000);
    }
    permission_timer_->arm_at(net::monotonic_ns() + kPermissionRefreshMs * kMs);
}

void TurnClient::route(const net::Address &peer) {
    net::Address p = peer.unmapped();
    if (std::find(routes_.begin(), routes_.end(), p) != routes_.end()) return;
    routes_.push_back(p);
    socket_.set_route(p, [this, p](std::span<const uint8_t> data, size_t segment) { return send_to(p, data, segment); });
}

net::UdpSocket::SendStatus TurnClient::send_to(const net::Address &peer, std::span<const uint8_t> data,
                                               size_t segment) {
    auto status = net::UdpSocket::SendStatus::sent;
    for (size_t off = 0; off < data.size(); off += segment) {
        auto part = data.subspan(off, std::min(segment, data.size() - off));
        auto tid = stun::new_transaction_id();
        auto wire = stun::Builder(stun::Method::send, stun::Class::indication, tid)
                        .add_xor_address(stun::attr::xor_peer_address, peer)
                        .add(stun::attr::data, part)
                        .finish({}, false);
        if (!agent_.send(config_.server, wire)) status = net::UdpSocket::SendStatus::failed;
        ++counters_.tx_datagrams;
        counters_.tx_bytes += part.size();
    }
    return status;
}

bool TurnClient::on_message(const stun::Message &m, const net::Datagram &d) {
    if (m.method != stun::Method::data || m.cls != stun::Class::indication) return false;
    if (!(d.remote.unmapped() == config_.server)) return true;  // only our relay speaks for peers
    auto peer = m.xor_address(stun::attr::xor_peer_address);
    const auto *data = m.find(stun::attr::data);
    if (!peer || !data) return true;
    ++counters_.rx_datagrams;
    counters_.rx_bytes += data->value.size();
    route(*peer);  // answers go back the way this came
    socket_.inject(data->value, *peer);
    return true;
}

} // namespace pp::nat
