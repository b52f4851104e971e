// nat/agent: the STUN side of an endpoint's one UDP socket (STUN shares the QUIC socket, so the
// reflexive address it learns is the one QUIC's peers see). Runs STUN transactions with
// retransmission (RFC 8489 §6.2.1), answers peers' Binding requests, learns the server-reflexive
// address from STUN servers and keeps that NAT mapping alive. Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "nat/stun.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"

namespace pp::nat {

// "HOST[:PORT]", "[v6]:PORT" or "stun:HOST[:PORT]" resolved to addresses (getaddrinfo: blocking,
// so call it off the loop). Throws pp::Error(PP_ERR_INVALID_ARGUMENT) for a malformed entry;
// an unresolvable name yields an empty list.
std::vector<net::Address> resolve(const std::string &server, uint16_t default_port);

// The public STUN servers a host asks when none are configured. Empty when the environment says
// PIXELPASS_DEFAULT_STUN=off (the test suite sets it: tests never reach out to the internet).
std::vector<std::string> default_stun_servers();

class Agent {
public:
    Agent(net::Loop &loop, net::UdpSocket &socket);
    ~Agent();
    Agent(const Agent &) = delete;
    Agent &operator=(const Agent &) = delete;

    // The answer to a request, or nullptr when every retransmission went unanswered.
    using Reply = std::function<void(const stun::Message *)>;
    // Sends `request` to `server` and retransmits it (RTO 250 ms, doubling) until an answer
    // with the same transaction id comes from that server or `timeout_ms` passes.
    void transact(const net::Address &server, std::vector<uint8_t> request, const stun::TransactionId &tid,
                  Reply reply, unsigned timeout_ms = 5000);
    void cancel(const stun::TransactionId &tid);
    // Sends a datagram as is (indications, TURN traffic).
    bool send(const net::Address &to, std::span<const uint8_t> data);

    // STUN messages that are no answer to a transaction of ours (indications, peers' requests)
    // go here first; return true when taken. Binding requests nobody took are answered.
    using Listener = std::function<bool(const stun::Message &, const net::Datagram &)>;
    void set_listener(Listener listener) { listener_ = std::move(listener); }
    // A further listener, asked after the one above (path probes beside TURN). Answers nobody
    // waits for (a probe's own responses) go to the listeners too.
    void add_listener(Listener listener) { more_listeners_.push_back(std::move(listener)); }

    // Learns the server-reflexive address from each server (in parallel); `done` runs once every
    // server answered or `timeout_ms` passed. After that, a Binding every `keepalive_ms` keeps
    // the mapping open and notices a new address.
    void discover(std::vector<net::Address> servers, std::function<void()> done, unsigned timeout_ms = 1500,
                  unsigned keepalive_ms = 20000);
    // The distinct reflexive addresses learned so far (plain IPv4 or IPv6), in arrival order.
    const std::vector<net::Address> &reflexive() const { return reflexive_; }

    struct Counters {
        uint64_t requests_sent = 0, retransmits = 0, answers = 0, timeouts = 0, bindings_answered = 0;
        uint64_t bindings_refused = 0;  // over the rate limit: not answered
    };
    const Counters &counters() const { return counters_; }

private:
    struct Pending {
        stun::TransactionId tid;
        net::Address server;
        std::vector<uint8_t> request;
        Reply reply;
        uint64_t next_send_ns, rto_ns, give_up_ns;
    };
    void on_stun(const net::Datagram &d);
    void on_timer();
    void rearm();
    void binding_round(unsigned timeout_ms);
    bool binding_answer_allowed(uint64_t now_ns);

    net::Loop &loop_;
    net::UdpSocket &socket_;
    net::Timer timer_;
    std::list<Pending> pending_;
    Listener listener_;
    std::vector<Listener> more_listeners_;
    std::vector<net::Address> servers_;
    std::vector<net::Address> reflexive_;
    std::unique_ptr<net::Timer> keepalive_;
    unsigned keepalive_ms_ = 20000;
    std::function<void()> discover_done_;
    size_t discover_waiting_ = 0;
    Counters counters_;
    double binding_tokens_ = 0;  // token bucket of unauthenticated Binding answers
    uint64_t binding_refill_ns_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace pp::nat
