// doctor's network checks beyond one Binding: the NAT's mapping behaviour (one socket asking every
// configured STUN server), port mapping on the gateway (a real mapping, deleted at once), and a
// TURN allocation on the configured relay with the configured credentials (the host's own client).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>

#include "common/error.hpp"
#include "doctor/doctor.hpp"
#include "nat/agent.hpp"
#include "nat/portmap.hpp"
#include "nat/stun.hpp"
#include "nat/turn.hpp"
#include "net/interfaces.hpp"
#include "net/loop.hpp"
#include "net/udp.hpp"

namespace pp::doctor {

namespace {

struct BindingQuery {
    std::string server;
    net::Address address;
    nat::stun::TransactionId tid;
    std::vector<uint8_t> wire;
    bool answered = false;
};

// One Binding request per distinct IPv4 server address: the same address twice tells nothing,
// and a server that does not resolve is left out rather than failing the whole check.
std::vector<BindingQuery> binding_queries(const std::vector<std::string> &servers) {
    std::vector<BindingQuery> queries;
    for (const auto &s : servers) {
        std::vector<net::Address> found;
        try {
            found = nat::resolve(s, 3478);
        } catch (const Error &) {
        }
        auto v4 = std::find_if(found.begin(), found.end(), [](const net::Address &a) { return a.family() == AF_INET; });
        if (v4 == found.end()) continue;
        if (std::any_of(queries.begin(), queries.end(), [&](const BindingQuery &q) { return q.address == *v4; })) continue;
        BindingQuery q{s, *v4, nat::stun::new_transaction_id(), {}, false};
        q.wire = nat::stun::Builder(nat::stun::Method::binding, nat::stun::Class::request, q.tid).finish();
        queries.push_back(std::move(q));
    }
    return queries;
}

// Sends every query from the one socket `fd` and collects the mapped addresses into out.seen,
// until all have answered or `timeout_ms` has passed.
void ask_all(int fd, std::vector<BindingQuery> &queries, unsigned timeout_ms, NatClassification &out) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto next_send = std::chrono::steady_clock::now();
    uint8_t buf[1500];
    while (std::any_of(queries.begin(), queries.end(), [](const BindingQuery &q) { return !q.answered; })) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        if (now >= next_send) {  // retransmit to the silent ones: a lost datagram is no verdict
            for (const auto &q : queries)
                if (!q.answered) ::sendto(fd, q.wire.data(), q.wire.size(), 0, q.address.sa(), q.address.len());
            next_send = now + std::chrono::milliseconds(300);
        }
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(deadline, next_send) - now);
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, int(wait.count()) + 1) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 20) continue;
        auto msg = nat::stun::parse({buf, size_t(n)});
        if (!msg || msg->cls != nat::stun::Class::success) continue;
        for (auto &q : queries) {
            if (q.answered || q.tid != msg->tid) continue;
            q.answered = true;
            auto mapped = msg->xor_address(nat::stun::attr::xor_mapped_address);
            if (!mapped) mapped = msg->xor_address(nat::stun::attr::mapped_address);
            if (mapped) out.seen.push_back({q.server, mapped->unmapped().to_string()});
        }
    }
}

// The verdict from what the servers saw: one mapping for all of them is endpoint-independent,
// several is endpoint-dependent, our own address and port unchanged is no NAT at all.
std::string nat_kind(const NatClassification &out) {
    std::vector<std::string> distinct;
    for (const auto &[server, mapped] : out.seen)
        if (std::find(distinct.begin(), distinct.end(), mapped) == distinct.end()) distinct.push_back(mapped);
    if (out.seen.empty()) return "unreachable";
    auto public_ip = distinct.front().substr(0, distinct.front().rfind(':'));
    bool local = false;
    for (const auto &a : net::local_addresses(AF_INET, false)) local = local || a.ip() == public_ip;
    if (local && distinct.size() == 1 && distinct.front() == public_ip + ":" + std::to_string(out.local_port))
        return "none";
    if (distinct.size() > 1) return "endpoint-dependent";
    if (out.seen.size() > 1) return "endpoint-independent";
    return "unknown";
}

} // namespace

NatClassification classify_nat(const std::vector<std::string> &servers, unsigned timeout_ms) {
    NatClassification out;
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw Error(PP_ERR_IO, std::string("socket: ") + std::strerror(errno));
    std::unique_ptr<int, void (*)(int *)> owner(&fd, [](int *f) { ::close(*f); });
    sockaddr_in any{};
    any.sin_family = AF_INET;
    socklen_t len = sizeof any;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&any), sizeof any) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&any), &len) != 0)
        throw Error(PP_ERR_IO, std::string("bind: ") + std::strerror(errno));
    out.local_port = ntohs(any.sin_port);

    std::vector<BindingQuery> queries = binding_queries(servers);
    ask_all(fd, queries, timeout_ms, out);
    out.asked = queries.size();
    out.kind = nat_kind(out);
    return out;
}

TurnCheck check_turn(const std::string &relay, const std::string &username, const std::string &password,
                     unsigned timeout_ms) {
    TurnCheck out;
    auto [host, port] = nat::parse_relay(relay);
    auto found = nat::resolve(host + ":" + std::to_string(port), port);
    if (found.empty()) {
        out.code = PP_ERR_UNREACHABLE;
        out.detail = "relay " + relay + " does not resolve";
        return out;
    }
    nat::TurnConfig tc;
    tc.server = found.front();
    tc.username = username;
    tc.password = password;
    tc.label = relay;
    net::Loop loop("pp-doctor");
    std::unique_ptr<net::UdpSocket> socket;
    std::unique_ptr<nat::Agent> agent;
    std::unique_ptr<nat::TurnClient> turn;
    auto done = std::make_shared<std::promise<std::pair<pp_result, std::string>>>();
    auto future = done->get_future();
    loop.call([&] {
        socket = std::make_unique<net::UdpSocket>(loop, net::UdpOptions{});
        agent = std::make_unique<nat::Agent>(loop, *socket);
        turn = std::make_unique<nat::TurnClient>(*agent, *socket, loop, tc);
        turn->allocate([done](pp_result rc, const std::string &detail) { done->set_value({rc, detail}); }, timeout_ms);
    });
    out.code = PP_ERR_UNREACHABLE;
    out.detail = "relay " + relay + " did not answer within " + std::to_string(timeout_ms) + " ms";
    if (future.wait_for(std::chrono::milliseconds(timeout_ms + 2000)) == std::future_status::ready) {
        auto [rc, detail] = future.get();
        out.code = rc;
        if (rc == PP_OK)
            out.relayed = loop.call([&] { return turn->relayed().to_string(); });
        else
            out.detail = detail;
    }
    // Releases the allocation (Refresh lifetime 0) on the loop before it stops.
    loop.call([&] {
        turn.reset();
        agent.reset();
        socket.reset();
    });
    return out;
}

} // namespace pp::doctor
