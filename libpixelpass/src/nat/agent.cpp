#include "nat/agent.hpp"

#include <netdb.h>

#include <algorithm>
#include <utility>
#include <cstdlib>
#include <cstring>

#include "common/error.hpp"

namespace pp::nat {

namespace {
constexpr uint64_t kMs = 1000000;
constexpr uint64_t kInitialRto = 250 * kMs;
constexpr std::string_view kSoftware = "pixelpass";
} // namespace

std::vector<net::Address> resolve(const std::string &server, uint16_t default_port) {
    std::string s = server;
    for (std::string_view scheme : {"stun:", "turn:"})
        if (s.rfind(scheme, 0) == 0) s = s.substr(scheme.size());
    std::string host = s, port = std::to_string(default_port);
    if (!s.empty() && s[0] == '[') {
        size_t close = s.find(']');
        if (close == std::string::npos) throw Error(PP_ERR_INVALID_ARGUMENT, "'" + server + "': missing ']'");
        host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') throw Error(PP_ERR_INVALID_ARGUMENT, "'" + server + "': expected ':PORT' after ']'");
            port = s.substr(close + 2);
        }
    } else if (std::count(s.begin(), s.end(), ':') == 1) {
        host = s.substr(0, s.find(':'));
        port = s.substr(s.find(':') + 1);
    }
    char *end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (host.empty() || port.empty() || *end || p <= 0 || p > 65535)
        throw Error(PP_ERR_INVALID_ARGUMENT, "'" + server + "' is not HOST[:PORT] (port 1-65535)");
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo *res = nullptr;
    std::vector<net::Address> out;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return out;
    for (addrinfo *ai = res; ai; ai = ai->ai_next) {
        net::Address a(ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen));
        if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
    }
    freeaddrinfo(res);
    return out;
}

std::vector<std::string> default_stun_servers() {
    const char *env = std::getenv("PIXELPASS_DEFAULT_STUN");
    if (env && std::string_view(env) == "off") return {};
    return {"stun.l.google.com:19302", "stun.cloudflare.com:3478"};
}

Agent::Agent(net::Loop &loop, net::UdpSocket &socket)
    : loop_(loop), socket_(socket), timer_(loop, [this] { on_timer(); }) {
    socket_.set_stun_handler([this](const net::Datagram &d) { on_stun(d); });
}

Agent::~Agent() {
    *alive_ = false;
    socket_.set_stun_handler(nullptr);
}

bool Agent::send(const net::Address &to, std::span<const uint8_t> data) {
    net::Address target = socket_.sendable(to);
    if (target.empty()) return false;
    return socket_.send(target, nullptr, data, data.size()) == net::UdpSocket::SendStatus::sent;
}

void Agent::transact(const net::Address &server, std::vector<uint8_t> request, const stun::TransactionId &tid,
                     Reply reply, unsigned timeout_ms) {
    uint64_t now = net::monotonic_ns();
    Pending p{tid, server.unmapped(), std::move(request), std::move(reply), now + kInitialRto, kInitialRto,
              now + uint64_t{timeout_ms} * kMs};
    send(p.server, p.request);
    ++counters_.requests_sent;
    pending_.push_back(std::move(p));
    rearm();
}

void Agent::cancel(const stun::TransactionId &tid) {
    pending_.remove_if([&](const Pending &p) { return p.tid == tid; });
    rearm();
}

void Agent::rearm() {
    uint64_t next = UINT64_MAX;
    for (const auto &p : pending_) next = std::min({next, p.next_send_ns, p.give_up_ns});
    timer_.arm_at(next);
}

void Agent::on_timer() {
    uint64_t now = net::monotonic_ns();
    std::vector<Reply> expired;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (now >= it->give_up_ns) {
            expired.push_back(std::move(it->reply));
            ++counters_.timeouts;
            it = pending_.erase(it);
            continue;
        }
        if (now >= it->next_send_ns) {
            send(it->server, it->request);
            ++counters_.retransmits;
            it->rto_ns = std::min<uint64_t>(it->rto_ns * 2, 4000 * kMs);
            it->next_send_ns = now + it->rto_ns;
        }
        ++it;
    }
    rearm();
    auto alive = alive_;
    for (auto &r : expired) {
        if (!*alive) return;
        if (r) r(nullptr);
    }
}

void Agent::on_stun(const net::Datagram &d) {
    auto msg = stun::parse(d.data);
    if (!msg) return;
    net::Address from = d.remote.unmapped();
    if (msg->cls == stun::Class::success || msg->cls == stun::Class::error) {
        for (auto it = pending_.begin(); it != pending_.end(); ++it) {
            if (it->tid == msg->tid && it->server == from) {
                Reply reply = std::move(it->reply);
                pending_.erase(it);
                ++counters_.answers;
                rearm();
                if (reply) reply(&*msg);
                return;
            }
        }
        for (auto &l : more_listeners_)
            if (l(*msg, d)) return;
        return;  // a late answer to something we gave up on
    }
    if (listener_ && listener_(*msg, d)) return;
    for (auto &l : more_listeners_)
        if (l(*msg, d)) return;
    if (msg->cls == stun::Class::request && msg->method == stun::Method::binding) {
        if (!binding_answer_allowed(net::monotonic_ns())) {
            ++counters_.bindings_refused;
            return;
        }
        // A peer checks that this address answers (and learns its reflexive address from us).
        auto answer = stun::Builder(stun::Method::binding, stun::Class::success, msg->tid)
                          .add_xor_address(stun::attr::xor_mapped_address, from)
                          .add(stun::attr::software, kSoftware)
                          .finish();
        send(from, answer);
        ++counters_.bindings_answered;
    }
}

// Anyone may send Binding requests to the open port; answering all of them would make it a
// reflector and a CPU sink. Peers need a handful (NAT checks, keep-alives): a burst of
// kBindingBurst, then kBindingPerSecond.
bool Agent::binding_answer_allowed(uint64_t now_ns) {
    constexpr double kBindingBurst = 40, kBindingPerSecond = 20;
    if (binding_refill_ns_ == 0) binding_tokens_ = kBindingBurst;
    else binding_tokens_ = std::min(kBindingBurst, binding_tokens_ + static_cast<double>(now_ns - binding_refill_ns_) * 1e-9 * kBindingPerSecond);
    binding_refill_ns_ = now_ns;
    if (binding_tokens_ < 1) return false;
    binding_tokens_ -= 1;
    return true;
}

void Agent::discover(std::vector<net::Address> servers, std::function<void()> done, unsigned timeout_ms,
                     unsigned keepalive_ms) {
    servers_.clear();
    for (const auto &s : servers)
        if (!socket_.sendable(s).empty()) servers_.push_back(s.unmapped());
    keepalive_ms_ = keepalive_ms;
    discover_done_ = std::move(done);
    discover_waiting_ = servers_.size();
    if (servers_.empty()) {
        if (auto f = std::exchange(discover_done_, nullptr)) f();
        return;
    }
    binding_round(timeout_ms);
    keepalive_ = std::make_unique<net::Timer>(loop_, [this] {
        binding_round(5000);
        keepalive_->arm_at(net::monotonic_ns() + uint64_t{keepalive_ms_} * kMs);
    });
    keepalive_->arm_at(net::monotonic_ns() + uint64_t{keepalive_ms_} * kMs);
}

void Agent::binding_round(unsigned timeout_ms) {
    for (const auto &server : servers_) {
        auto tid = stun::new_transaction_id();
        auto request = stun::Builder(stun::Method::binding, stun::Class::request, tid)
                           .add(stun::attr::software, kSoftware)
                           .finish();
        transact(server, std::move(request), tid, [this](const stun::Message *m) {
            if (m && m->cls == stun::Class::success) {
                auto mapped = m->xor_address(stun::attr::xor_mapped_address);
                if (mapped && std::find(reflexive_.begin(), reflexive_.end(), mapped->unmapped()) == reflexive_.end())
                    reflexive_.push_back(mapped->unmapped());
            }
            if (discover_waiting_ > 0 && --discover_waiting_ == 0)
                if (auto f = std::exchange(discover_done_, nullptr)) f();
        }, timeout_ms);
    }
}

} // namespace pp::nat
