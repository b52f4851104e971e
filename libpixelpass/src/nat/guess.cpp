#include "nat/guess.hpp"

#include <netinet/in.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/random.hpp"
#include "nat/paths.hpp"

namespace pp::nat::guess {

namespace {
constexpr uint64_t kMs = 1000000;
constexpr uint64_t kTickMs = 10;
// A fan waits this long for the other side's guesses: its offer crosses the DHT (up to ~1.5 s),
// then the spray runs kMaxGuesses / kGuessesPerSecond = 2.6 s.
constexpr uint64_t kFanMs = 10000;
// Each fan socket probes at these times after opening: the first opens the NAT's ports, the
// later ones survive a lost packet and meet guesses that came before (then they get through).
constexpr uint64_t kFanRoundMs[] = {0, 1000, 2500};
constexpr uint64_t kSprayGraceMs = 2000;  // after the last guess: answers still count
constexpr size_t kMemory = 64;            // hits remembered

uint64_t spray_ms() { return kMaxGuesses * 1000 / kGuessesPerSecond + kSprayGraceMs; }

} // namespace

std::string role(const std::string &ours, const std::string &theirs) {
    if (ours == "symmetric" && theirs == "cone") return "fan";
    if (ours == "cone" && theirs == "symmetric") return "spray";
    return "";
}

struct Guesser::Fan {
    std::string session;
    net::Address peer;  // where every socket probes (plain IPv4)
    std::vector<std::unique_ptr<net::UdpSocket>> sockets;
    net::UdpSocket *open = nullptr;  // the socket the peer reached: it carries the connection
    net::Address opened_to;          // the peer's address as that socket heard it
    uint64_t started_ns = 0;  // when its sockets open (later than asked for a delayed fan)
    bool opened = false;      // its sockets are open
    bool retired = false;     // dropped: ignores everything until it is destroyed
    size_t rounds = 0;        // of kFanRoundMs sent
};

struct Guesser::Spray {
    std::string session;
    net::Address peer;            // the IP guessed at (plain IPv4)
    std::vector<uint16_t> ports;  // the guesses, in random order
    size_t next = 0;
    net::Address hit;  // the port that answered
    uint64_t until_ns = 0;
};

Guesser::Guesser(net::Loop &loop, net::UdpSocket &main, std::vector<uint8_t> key, Found found)
    : loop_(loop), main_(main), key_(std::move(key)), found_(std::move(found)), timer_(loop, [this] { tick(); }) {}

Guesser::~Guesser() {
    *alive_ = false;
    for (const auto &f : fans_)
        if (f->open) main_.set_route(f->opened_to, nullptr);
}

std::vector<uint8_t> Guesser::probe(const std::string &session) const {
    return stun::Builder(stun::Method::binding, stun::Class::request, stun::new_transaction_id())
        .add(stun::attr::username, session)
        .finish(key_);
}

std::vector<uint8_t> Guesser::answer(const std::string &session, const stun::TransactionId &tid,
                                     const net::Address &to) const {
    return stun::Builder(stun::Method::binding, stun::Class::success, tid)
        .add(stun::attr::username, session)
        .add_xor_address(stun::attr::xor_mapped_address, to)
        .finish(key_);
}

bool Guesser::authentic(const stun::Message &m, const std::string &session) const {
    return m.method == stun::Method::binding && m.text(stun::attr::username) == session && m.integrity_ok(key_);
}

bool Guesser::fan(const std::string &session, const net::Address &peer_address, unsigned after_ms) {
    net::Address peer = peer_address.unmapped();
    size_t waiting = std::count_if(fans_.begin(), fans_.end(), [](const auto &f) { return !f->open; });
    bool bindable = main_.local_address().unmapped().is_any() || main_.local_address().unmapped().family() == AF_INET;
    if (!bindable || !limits_.admit(Limits::Kind::fan, session, peer, waiting)) {
        ++counters_.refused;
        return false;
    }
    auto f = std::make_unique<Fan>();
    f->session = session;
    f->peer = peer;
    f->started_ns = net::monotonic_ns() + uint64_t{after_ms} * kMs;
    ++counters_.fans;
    if (after_ms == 0) open_fan(*f);
    fans_.push_back(std::move(f));
    rearm();
    return true;
}

void Guesser::open_fan(Fan &f) {
    f.opened = true;
    // The fan's sockets bind where the main socket is bound (any address, or its IPv4 one).
    net::Address bound = main_.local_address().unmapped();
    net::UdpOptions options;
    options.bind_ip = bound.is_any() ? "0.0.0.0" : bound.ip();
    options.rx_batch = 1;  // 64 KiB each, not 1 MiB: there are hundreds
    Fan *fp = &f;
    for (size_t i = 0; i < kFanSockets; ++i) {
        std::unique_ptr<net::UdpSocket> s;
        try {
            s = std::make_unique<net::UdpSocket>(loop_, options);
        } catch (const Error &) {
            break;  // out of descriptors or ports: fan with what we have
        }
        net::UdpSocket *sp = s.get();
        sp->set_stun_handler([this, fp, sp](const net::Datagram &d) { on_fan_stun(*fp, *sp, d); });
        sp->set_quic_handler([this, fp, sp](const net::Datagram &d) {
            // Only the open socket carries QUIC, and only the peer's.
            if (fp->open == sp && d.remote.unmapped() == fp->opened_to) main_.inject(d.data, fp->opened_to);
        });
        f.sockets.push_back(std::move(s));
    }
    fan_probe(f);
}

void Guesser::fan_probe(Fan &f) {
    ++f.rounds;
    for (const auto &s : f.sockets) {
        s->send_unrouted(f.peer, probe(f.session));
        ++counters_.fan_probes;
    }
}

bool Guesser::on_fan_stun(Fan &f, net::UdpSocket &s, const net::Datagram &d) {
    auto m = stun::parse(d.data);
    net::Address from = d.remote.unmapped();
    // The cone side's NAT keeps one public address: the peer comes from the IP we fanned toward.
    if (!m || f.retired || from.ip() != f.peer.ip() || (f.open && f.open != &s) || !authentic(*m, f.session))
        return false;
    if (m->cls == stun::Class::request) {
        s.send_unrouted(from, answer(f.session, m->tid, from));
        ++counters_.answered;
    } else if (m->cls != stun::Class::success) {
        return false;
    }
    if (!f.open) fan_opened(f, s, from);
    return true;
}

void Guesser::fan_opened(Fan &f, net::UdpSocket &s, const net::Address &from) {
    f.open = &s;
    f.opened_to = from;
    ++counters_.hits;
    // The other sockets close now (not `s`, whose handler runs): their NAT ports time out.
    std::erase_if(f.sockets, [&](const auto &p) { return p.get() != &s; });
    net::UdpSocket *via = &s;
    main_.set_route(from, [via, from](std::span<const uint8_t> data, size_t segment) {
        auto st = via->send(via->sendable(from), nullptr, data, segment);
        // The main socket's writers wait for the main socket's writability, never this one's:
        // a full buffer here is loss to QUIC, not a stall.
        return st == net::UdpSocket::SendStatus::blocked ? net::UdpSocket::SendStatus::failed : st;
    });
    // Later, on the loop: the callback may settle or release, which destroys fans.
    loop_.post([this, alive = std::weak_ptr<bool>(alive_), session = f.session, from] {
        if (alive.lock() && found_) found_(session, from);
    });
}

bool Guesser::spray(const std::string &session, const net::Address &peer_address) {
    net::Address peer = peer_address.unmapped();
    std::erase_if(sprays_, [now = net::monotonic_ns()](const auto &s) { return now >= s->until_ns; });
    if (main_.sendable(peer).empty() || !limits_.admit(Limits::Kind::spray, session, peer, sprays_.size())) {
        ++counters_.refused;
        return false;
    }
    auto s = std::make_unique<Spray>();
    s->session = session;
    s->peer = net::Address::parse(peer.ip(), 0);
    std::vector<uint32_t> draws(kMaxGuesses);
    random_bytes(std::span<uint8_t>(reinterpret_cast<uint8_t *>(draws.data()), draws.size() * sizeof(uint32_t)));
    s->ports = guess_ports(draws);
    s->until_ns = net::monotonic_ns() + spray_ms() * kMs;
    ++counters_.sprays;
    sprays_.push_back(std::move(s));
    rearm();
    return true;
}

bool Guesser::on_stun(const stun::Message &m, const net::Datagram &d) {
    net::Address from = d.remote.unmapped();
    for (auto &s : sprays_) {
        if (from.ip() != s->peer.ip() || !authentic(m, s->session)) continue;
        if (m.cls == stun::Class::request) {
            // A fan socket's probe got in (our guess opened our NAT to it first): answer it, so
            // the fan opens too.
            main_.send_unrouted(from, answer(s->session, m.tid, from));
            ++counters_.answered;
        } else if (m.cls != stun::Class::success) {
            continue;
        }
        if (s->hit.empty()) {
            s->hit = from;
            s->next = s->ports.size();  // no more guesses
            if (hits_.size() >= kMemory) hits_.erase(hits_.begin());
            hits_.push_back(from);
            ++counters_.hits;
            loop_.post([this, alive = std::weak_ptr<bool>(alive_), session = s->session, from] {
                if (alive.lock() && found_) found_(session, from);
            });
        }
        return true;
    }
    return false;
}

void Guesser::tick() {
    uint64_t now = net::monotonic_ns();
    size_t allowed = limits_.allowance(now);
    for (auto &s : sprays_)
        while (s->next < s->ports.size() && allowed > 0) {
            main_.send_unrouted(net::Address::parse(s->peer.ip(), s->ports[s->next++]), probe(s->session));
            ++counters_.guesses;
            limits_.spend(1);
            --allowed;
        }
    // Expired sprays go (a hit stays in hits_).
    std::erase_if(sprays_, [&](const auto &s) { return now >= s->until_ns; });
    for (auto &f : fans_) {
        if (!f->opened && now >= f->started_ns) {
            // A delayed fan opens only if the peer has not reached us another way meanwhile.
            if (connected_ && connected_(f->peer)) f->started_ns = 0;  // dropped below
            else open_fan(*f);
        }
        else if (f->opened && !f->open && f->rounds < std::size(kFanRoundMs) &&
                 now >= f->started_ns + kFanRoundMs[f->rounds] * kMs)
            fan_probe(*f);
    }
    std::erase_if(fans_, [&](const auto &f) { return !f->open && (!f->started_ns || now >= f->started_ns + kFanMs * kMs); });
    rearm();
}

void Guesser::rearm() {
    bool work = std::any_of(fans_.begin(), fans_.end(), [](const auto &f) { return !f->open; }) ||
                std::any_of(sprays_.begin(), sprays_.end(), [](const auto &s) { return s->hit.empty(); });
    if (work)
        timer_.arm_at(net::monotonic_ns() + kTickMs * kMs);
    else
        timer_.cancel();
}

void Guesser::drop_fans(const std::function<bool(const Fan &)> &which) {
    // Retired, not destroyed: this may run inside a fan socket's own handler (the QUIC datagram it
    // hands on closes or admits a connection), which must return before its socket goes.
    for (auto it = fans_.begin(); it != fans_.end();) {
        if (!which(**it)) {
            ++it;
            continue;
        }
        if ((*it)->open) main_.set_route((*it)->opened_to, nullptr);
        (*it)->open = nullptr;  // its handlers ignore everything from now on
        (*it)->retired = true;
        retired_.push_back(std::move(*it));
        it = fans_.erase(it);
    }
    if (!retired_.empty())
        loop_.post([this, alive = std::weak_ptr<bool>(alive_)] {
            if (alive.lock()) retired_.clear();
        });
    rearm();
}

void Guesser::settle(const net::Address &in_use) {
    net::Address u = in_use.unmapped();
    // Sprays toward it stop (a hit stays in hits_, for guessed()).
    std::erase_if(sprays_, [&](const auto &s) { return s->peer.ip() == u.ip(); });
    drop_fans([&](const Fan &f) { return f.peer.ip() == u.ip() && !(f.open && f.opened_to == u); });
}

void Guesser::release(const net::Address &peer) {
    net::Address u = peer.unmapped();
    std::erase(hits_, u);
    drop_fans([&](const Fan &f) { return f.open && f.opened_to == u; });
}

bool Guesser::guessed(const net::Address &a) const {
    net::Address u = a.unmapped();
    return std::any_of(fans_.begin(), fans_.end(), [&](const auto &f) { return f->open && f->opened_to == u; }) ||
           std::find(hits_.begin(), hits_.end(), u) != hits_.end();
}

bool Guesser::active() const {
    return std::any_of(fans_.begin(), fans_.end(), [](const auto &f) { return !f->open; }) ||
           std::any_of(sprays_.begin(), sprays_.end(), [](const auto &s) { return s->hit.empty(); });
}

nlohmann::json Guesser::stats() const {
    size_t sockets = 0;
    for (const auto &f : fans_) sockets += f->sockets.size();
    return {{"fans", counters_.fans},         {"sprays", counters_.sprays},   {"refused", counters_.refused},
            {"fan_probes", counters_.fan_probes}, {"guesses", counters_.guesses}, {"hits", counters_.hits},
            {"answered", counters_.answered}, {"sockets_open", sockets},      {"active", active()}};
}

} // namespace pp::nat::guess
