#include "nat/paths.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <gnutls/crypto.h>

#include <algorithm>

namespace pp::nat {

namespace {
constexpr uint64_t kMs = 1000000;
constexpr uint64_t kTickMs = 50;
constexpr uint64_t kActiveProbeMs = 200;   // the path in use: a probe every 200 ms
constexpr uint64_t kDeadMs = 700;          // silent this long: fall back to the relay
constexpr uint64_t kPunchMs = 5000;        // after candidates arrive: probe them all fast
// A punch that failed waits this long in silence before the next round: a Linux NAT that got the
// peer's probe before sending its own keeps that unreplied conntrack entry for 30 s and, while it
// lives, maps our outgoing flow to another port the peer's filter refuses.
constexpr uint64_t kQuietMs = 32000;
constexpr uint64_t kKeeperMs = 5000;   // during the quiet: TTL-1 keepers of our own NAT's mappings
constexpr uint64_t kFollowMs = 300;    // the viewer's delay behind the host in later rounds
constexpr uint64_t kPunchProbeMs = 200;
constexpr uint64_t kStandbyProbeMs = 500;  // on the relay: known-good direct paths, to come back
constexpr uint64_t kSentMemoryMs = 5000;   // answers later than this are ignored
constexpr size_t kMaxSent = 1024;           // probes remembered at once (the budget allows ~690 in 5 s)
constexpr std::string_view kKeyLabel = "pixelpass path probe v1";
} // namespace

std::vector<uint8_t> probe_key(std::span<const uint8_t> ticket_secret) {
    std::vector<uint8_t> key(32);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, ticket_secret.data(), ticket_secret.size(), kKeyLabel.data(),
                     kKeyLabel.size(), key.data());
    return key;
}

bool probe_target_allowed(const net::Address &candidate, const net::Address &quic_peer) {
    net::Address a = candidate.unmapped();
    if (a.empty() || a.port() == 0 || a.is_any() || a.is_link_local()) return false;
    if (a.is_loopback()) return quic_peer.unmapped().is_loopback();
    if (a.family() == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(a.sa());
        uint32_t ip = ntohl(in->sin_addr.s_addr);
        if ((ip >> 24) == 0 || (ip >> 28) == 0xe || ip == 0xffffffffu) return false;  // 0/8, multicast, broadcast
        if ((ip >> 28) == 0xf) return false;                                             // reserved 240/4
        return true;
    }
    const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(a.sa());
    return in6->sin6_addr.s6_addr[0] != 0xff;  // multicast
}

const char *path_kind_name(PathKind kind) {
    switch (kind) {
    case PathKind::direct: return "direct";
    case PathKind::punched: return "punched";
    case PathKind::relayed: return "relayed";
    }
    return "direct";
}

PeerPaths::PeerPaths(net::Loop &loop, net::UdpSocket &socket, Agent &agent, TurnClient *turn, Options options,
                     Changed changed)
    : loop_(loop), socket_(socket), agent_(agent), turn_(turn), options_(std::move(options)),
      changed_(std::move(changed)), kind_(options_.started_relayed ? PathKind::relayed : PathKind::direct),
      timer_(loop, [this] { tick(); }) {
    options_.virtual_remote = options_.virtual_remote.unmapped();
    if (options_.started_relayed) {
        peer_relayed_ = options_.virtual_remote;
        relay_permitted_ = true;  // QUIC's own path comes through it: the relay already lets it in
    } else {
        // The first path is a direct one that already works: it is candidate 0, in use, and its
        // datagrams are watched (an alias onto itself) so silence is noticed.
        Candidate &c = *add(options_.virtual_remote);  // the first: always room
        c.validated = true;
        c.last_ok_ns = net::monotonic_ns();
        active_ = 0;
        socket_.set_alias(options_.virtual_remote, options_.virtual_remote, options_.virtual_local);
    }
    timer_.arm_at(net::monotonic_ns() + kTickMs * kMs);
}

PeerPaths::~PeerPaths() {
    // Our permission for the peer's relayed address goes with us (a connection that started
    // relayed holds none of ours: the relay lets its path in already).
    if (relay_permitted_ && !options_.started_relayed && turn_) turn_->unpermit(peer_relayed_);
    for (const auto &c : candidates_) socket_.clear_alias(c.address);
    if (!options_.started_relayed && !peer_relayed_.empty()) socket_.clear_alias(peer_relayed_);
    if (options_.started_relayed && turn_) {
        net::Address peer = options_.virtual_remote;
        TurnClient *turn = turn_;
        socket_.set_route(peer, [turn, peer](std::span<const uint8_t> d, size_t s) { return turn->send(peer, d, s); });
    } else {
        socket_.set_route(options_.virtual_remote, nullptr);
    }
}

bool PeerPaths::has_relay() const { return turn_ && turn_->allocated() && !peer_relayed_.empty() && relay_permitted_; }

// An address of our own relay: where an allocation made with the ticket's relay credentials lives.
// Its permission covers only what that relay itself relays (which the host lets in anyway).
bool PeerPaths::on_our_relay(const net::Address &a) const {
    if (!turn_) return false;
    std::string ip = a.unmapped().ip();
    if (turn_->allocated() && ip == turn_->relayed().unmapped().ip()) return true;
    return ip == turn_->config().server.unmapped().ip();
}

void PeerPaths::permit_peer_relayed() {
    if (relay_permitted_ || !turn_ || peer_relayed_.empty()) return;
    relay_permitted_ = true;
    turn_->permit(peer_relayed_);
}

net::Address PeerPaths::via() const {
    if (active_ >= 0) return candidates_[static_cast<size_t>(active_)].address;
    return peer_relayed_;
}

PeerPaths::Candidate *PeerPaths::find(const net::Address &a) {
    net::Address u = a.unmapped();
    for (auto &c : candidates_)
        if (c.address == u) return &c;
    return nullptr;
}

PeerPaths::Candidate *PeerPaths::add(const net::Address &a) {
    if (Candidate *c = find(a)) return c;
    if (candidates_.size() >= kMaxPeerCandidates + 1) return nullptr;  // + the path QUIC started on
    candidates_.push_back(Candidate{a.unmapped()});
    return &candidates_.back();
}

void PeerPaths::add_candidates(const std::vector<net::Address> &candidates) {
    uint64_t now = net::monotonic_ns();
    for (const auto &a : candidates) {
        net::Address u = a.unmapped();
        if (!probe_target_allowed(u, options_.virtual_remote) || socket_.sendable(u).empty()) continue;
        if (u == peer_relayed_ || socket_.routed(u)) continue;  // relayed addresses are no direct paths
        if (!add(u)) break;  // full
    }
    punch_until_ns_ = now + kPunchMs * kMs;
    for (auto &c : candidates_) probe(c);
}

void PeerPaths::set_peer_relayed(const net::Address &relayed) {
    if (options_.started_relayed || relayed.empty()) return;
    peer_relayed_ = relayed.unmapped();
    // What the peer sends us through the relay still belongs to QUIC's one path.
    socket_.set_alias(peer_relayed_, options_.virtual_remote, options_.virtual_local);
    // A ticket holder may name any address here; a permission would let that address send into
    // our allocation and make it our fallback path. So: only with evidence it is the peer's.
    if (on_our_relay(peer_relayed_))
        permit_peer_relayed();
    else
        ++counters_.relay_unverified;
}

bool PeerPaths::spend() {
    uint64_t now = net::monotonic_ns();
    ProbeBudget *host = options_.shared_budget;
    if (budget_.available(now) < 1 || (host && host->bucket.available(now) < 1)) {
        if (host) ++host->deferred;
        return false;
    }
    budget_.take(now);
    if (host) host->bucket.take(now);
    return true;
}

void PeerPaths::probe(Candidate &c, int ttl) {
    uint64_t now = net::monotonic_ns();
    // Over budget: the candidate keeps its last probe time, so the next tick tries again.
    if (!ttl && !spend()) {
        ++counters_.probes_deferred;
        return;
    }
    auto tid = stun::new_transaction_id();
    auto wire = stun::Builder(stun::Method::binding, stun::Class::request, tid)
                    .add(stun::attr::username, options_.session)
                    .finish(options_.key);
    socket_.send_unrouted(c.address, wire, ttl);
    if (ttl) return;  // a keeper: it never reaches the peer
    c.last_probe_ns = now;
    ++counters_.probes_sent;
    // Oldest first: expiry pops from the front instead of scanning every probe ever sent.
    while (!sent_order_.empty() && (sent_order_.front().first + kSentMemoryMs * kMs < now || sent_order_.size() >= kMaxSent)) {
        sent_.erase(sent_order_.front().second);  // if not answered already
        sent_order_.pop_front();
    }
    sent_order_.emplace_back(now, tid);
    sent_[tid] = Sent{c.address, now};
}

bool PeerPaths::on_stun(const stun::Message &m, const net::Datagram &d) {
    if (m.method != stun::Method::binding) return false;
    net::Address from = d.remote.unmapped();
    uint64_t now = net::monotonic_ns();
    if (m.cls == stun::Class::request) {
        if (m.text(stun::attr::username) != options_.session || !m.integrity_ok(options_.key)) return false;
        if (from == peer_relayed_) permit_peer_relayed();  // the peer proved the address is its own (the probe key)
        // The key proves a ticket holder sent it, not from where: a flood of them (from spoofed
        // sources) must not be answered one for one.
        if (!spend()) {
            ++counters_.answers_refused;
            return true;
        }
        ++counters_.probes_answered;
        auto answer = stun::Builder(stun::Method::binding, stun::Class::success, m.tid)
                          .add(stun::attr::username, options_.session)
                          .add_xor_address(stun::attr::xor_mapped_address, from)
                          .finish(options_.key);
        if (from == peer_relayed_) {
            agent_.send(from, answer);  // came through the relay: answered the same way
            return true;
        }
        socket_.send_unrouted(from, answer);
        Candidate *c = find(from);
        if (!c) {
            // Peer-reflexive: the peer's NAT gave this probe a port we could not know (symmetric).
            c = add(from);
            if (!c) return true;  // the table is full: answered, not remembered
            ++counters_.peer_reflexive;
        }
        socket_.set_alias(from, options_.virtual_remote, options_.virtual_local);
        // Triggered check: the peer just opened its side toward us; answer with a probe of ours.
        if (now - c->last_probe_ns > 50 * kMs) probe(*c);
        return true;
    }
    if (m.cls != stun::Class::success) return false;
    auto it = sent_.find(m.tid);
    if (it == sent_.end() || it->second.to != from) return false;
    sent_.erase(it);
    if (!m.integrity_ok(options_.key)) return true;  // not from the peer: ignore
    Candidate *c = find(from);
    if (!c) return true;
    ++counters_.answers_received;
    c->validated = true;
    c->last_ok_ns = now;
    socket_.set_alias(from, options_.virtual_remote, options_.virtual_local);
    if (active_ < 0) use_direct(*c);
    return true;
}

uint64_t PeerPaths::heard(const Candidate &c) const { return std::max(c.last_ok_ns, socket_.last_heard(c.address)); }

void PeerPaths::tick() {
    uint64_t now = net::monotonic_ns();
    bool any_validated = std::any_of(candidates_.begin(), candidates_.end(), [](const Candidate &c) { return c.validated; });
    if (!any_validated && punch_until_ns_ && now >= punch_until_ns_) {
        if (!quiet_until_ns_) {
            quiet_until_ns_ = now + kQuietMs * kMs;
        } else if (now >= quiet_until_ns_) {
            // Next round, the other way round: the host probes first, on a fresh flow through
            // its own NAT; the viewer, whose NAT mappings toward the host were kept alive by the
            // keepers below, follows a little later.
            quiet_until_ns_ = 0;
            round_start_ns_ = now;
            punch_until_ns_ = now + kPunchMs * kMs;
            ++rounds_;
            ++counters_.punch_rounds;
        }
    }
    bool punching = now < punch_until_ns_ && (rounds_ == 0 || !options_.leads || now >= round_start_ns_ + kFollowMs * kMs);
    if (quiet_until_ns_ && options_.leads && options_.behind_nat && now - last_keeper_ns_ >= kKeeperMs * kMs) {
        // Keepers: TTL 1 dies in our own router but refreshes its mapping toward each candidate
        // there, while the host's router forgets the probes that came before its own.
        last_keeper_ns_ = now;
        for (auto &c : candidates_) probe(c, 1);
    }
    if (active_ >= 0) {
        Candidate &c = candidates_[static_cast<size_t>(active_)];
        if (now - c.last_probe_ns >= kActiveProbeMs * kMs) probe(c);
        if (has_relay() && now - heard(c) > kDeadMs * kMs) use_relay();
    }
    for (size_t i = 0; i < candidates_.size(); ++i) {
        if (static_cast<int>(i) == active_) continue;
        Candidate &c = candidates_[i];
        uint64_t every = 0;
        if (punching)
            every = kPunchProbeMs;
        else if (active_ < 0 && c.validated)
            every = kStandbyProbeMs;
        if (every && now - c.last_probe_ns >= every * kMs) probe(c);
    }
    timer_.arm_at(now + kTickMs * kMs);
}

void PeerPaths::use_relay() {
    if (!has_relay() || active_ < 0) return;
    net::Address peer = peer_relayed_;
    TurnClient *turn = turn_;
    socket_.set_route(options_.virtual_remote,
                      [turn, peer](std::span<const uint8_t> d, size_t s) { return turn->send(peer, d, s); });
    active_ = -1;
    kind_ = PathKind::relayed;
    ++switches_;
    if (changed_) changed_(kind_, peer);
}

void PeerPaths::use_direct(Candidate &c) {
    int index = static_cast<int>(&c - candidates_.data());
    if (index == active_) return;
    bool first_path = !options_.started_relayed && c.address == options_.virtual_remote;
    if (first_path) {
        socket_.set_route(options_.virtual_remote, nullptr);
    } else {
        net::Address to = c.address;
        net::UdpSocket *socket = &socket_;
        socket_.set_route(options_.virtual_remote, [socket, to](std::span<const uint8_t> d, size_t s) {
            return socket->send(socket->sendable(to), nullptr, d, s);
        });
    }
    active_ = index;
    kind_ = first_path ? PathKind::direct : PathKind::punched;
    ++switches_;
    if (changed_) changed_(kind_, c.address);
}

} // namespace pp::nat
