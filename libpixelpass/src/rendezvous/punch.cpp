#include "rendezvous/punch.hpp"

#include <algorithm>

#include "nat/stun.hpp"

namespace pp::rendezvous {

namespace {
constexpr uint64_t kMs = 1000000;
constexpr uint64_t kPunchMs = 6000;   // as long as a viewer's Initial retransmissions matter
constexpr uint64_t kProbeEveryMs = 250;
constexpr size_t kMemory = 256;       // sessions and addresses remembered
} // namespace

bool unfit_candidate(const net::Address &addr) {
    net::Address a = addr.unmapped();
    if (a.empty() || a.is_any() || a.is_loopback() || a.is_link_local() || a.port() == 0) return true;
    if (a.family() == AF_INET) {
        uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in *>(a.sa())->sin_addr.s_addr);
        return (ip >> 28) == 0xe || ip == 0xffffffffu || (ip >> 24) == 0;  // multicast, broadcast, 0/8
    }
    const auto *six = reinterpret_cast<const sockaddr_in6 *>(a.sa());
    return six->sin6_addr.s6_addr[0] == 0xff;  // multicast
}

Puncher::Puncher(net::Loop &loop, net::UdpSocket &socket, std::vector<uint8_t> probe_key)
    : socket_(socket), key_(std::move(probe_key)), timer_(loop, [this] { tick(); }) {}

bool Puncher::punch(const Offer &offer) {
    ++offers_;
    if (std::find(seen_.begin(), seen_.end(), offer.session) != seen_.end() || active_.size() >= kMaxActive) {
        ++refused_;
        return false;
    }
    if (seen_.size() >= kMemory) seen_.erase(seen_.begin());
    seen_.push_back(offer.session);
    Target t{offer.session, {}, net::monotonic_ns() + kPunchMs * kMs};
    for (const auto &c : offer.candidates) {
        if (t.candidates.size() >= kMaxCandidates) break;
        net::Address a = c.unmapped();
        if (unfit_candidate(a) || socket_.sendable(a).empty()) continue;
        if (std::find(t.candidates.begin(), t.candidates.end(), a) != t.candidates.end()) continue;
        t.candidates.push_back(a);
        if (punched_.size() >= kMemory) punched_.erase(punched_.begin());
        punched_.push_back(a);
    }
    for (const auto &a : t.candidates) probe(t.session, a);
    active_.push_back(std::move(t));
    timer_.arm_at(net::monotonic_ns() + kProbeEveryMs * kMs);
    return true;
}

bool Puncher::punched(const net::Address &a) const {
    // By address: a symmetric NAT on the viewer's side sends from another port than the one its
    // offer named, and an address-restricted NAT on ours let it in because we punched that address.
    std::string ip = a.unmapped().ip();
    return std::any_of(punched_.begin(), punched_.end(), [&](const net::Address &p) { return p.ip() == ip; });
}

void Puncher::probe(const std::string &session, const net::Address &to) {
    auto wire = nat::stun::Builder(nat::stun::Method::binding, nat::stun::Class::request, nat::stun::new_transaction_id())
                    .add(nat::stun::attr::username, session)
                    .finish(key_);
    socket_.send_unrouted(to, wire);
    ++probes_;
}

void Puncher::tick() {
    uint64_t now = net::monotonic_ns();
    std::erase_if(active_, [&](const Target &t) { return now >= t.until_ns; });
    for (const auto &t : active_)
        for (const auto &a : t.candidates) probe(t.session, a);
    if (!active_.empty()) timer_.arm_at(now + kProbeEveryMs * kMs);
}

nlohmann::json Puncher::stats() const {
    return {{"offers", offers_}, {"refused", refused_}, {"probes_sent", probes_}, {"punching", active_.size()}};
}

} // namespace pp::rendezvous
