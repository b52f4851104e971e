// net/udp: the one UDP socket of an endpoint, on the loop. Receives in batches (recvmmsg, with
// UDP GRO where the kernel has it), sends batches of equal-sized datagrams in one call (UDP GSO,
// falling back to one datagram per call), keeps 8 MiB socket buffers, and learns each datagram's
// destination address (IP_PKTINFO) so a multi-homed server answers from the address it was asked.
//
// Demultiplexing (RFC 9443): a STUN message starts with the two top bits 00 and carries the magic
// cookie 0x2112A442 in bytes 4-7; everything else is QUIC. (The first byte alone is not enough:
// ngtcp2 always greases QUIC's fixed bit, RFC 9287.) The STUN handler is the hook where nat/
// plugs in STUN — and TURN, whose ChannelData 0x40-0x4f it must claim by peer address before
// QUIC sees it — on the same socket.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "net/address.hpp"
#include "net/handle.hpp"
#include "net/loop.hpp"

namespace pp::net {

struct Datagram {
    std::span<const uint8_t> data;
    const Address &remote;  // sender, in this socket's form (v4-mapped on a dual-stack socket)
    const Address &local;   // where it was sent to (IP_PKTINFO), with this socket's port
    uint8_t ecn;            // ECN bits of the IP header (0 unless ECN reception is on)
};

struct UdpOptions {
    std::string bind_ip;  // numeric; empty = every interface, dual-stack when IPv6 exists
    uint16_t port = 0;    // 0 = any free port
    int buffer_bytes = 8 << 20;
    bool gro = true;      // coalesced receive where supported
    bool gso = true;      // segmented send where supported
    // Datagrams per receive call, each slot 64 KiB of memory: a socket among hundreds (port
    // guessing's fan) takes 1 to stay small.
    size_t rx_batch = 16;
};

class UdpSocket {
public:
    using Handler = std::function<void(const Datagram &)>;

    // Binds and starts receiving. Throws pp::Error(PP_ERR_IO) when the address cannot be bound.
    // Construct and destroy on the loop thread.
    UdpSocket(Loop &loop, const UdpOptions &options);
    ~UdpSocket();
    UdpSocket(const UdpSocket &) = delete;
    UdpSocket &operator=(const UdpSocket &) = delete;

    const Address &local_address() const { return local_; }
    bool dual_stack() const { return dual_stack_; }
    // `remote` in the form this socket sends to (IPv4 becomes v4-mapped on a dual-stack socket),
    // or an empty Address when this socket cannot reach that family.
    Address sendable(const Address &remote) const;

    void set_quic_handler(Handler handler) { quic_ = std::move(handler); }
    void set_stun_handler(Handler handler) { stun_ = std::move(handler); }
    // Runs after each received batch, once its datagrams went to their handlers: the place to
    // answer them all at once.
    void set_batch_end(std::function<void()> fn) { batch_end_ = std::move(fn); }
    // Runs once the socket is writable again after send() reported `blocked`.
    void set_writable(std::function<void()> fn) { writable_ = std::move(fn); }
    // Runs when an ICMP error says a datagram to `remote` could not be delivered (nothing
    // listens there, no route). A hint only: ICMP can be forged, so the listener confirms it.
    void set_unreachable(std::function<void(const Address &remote)> fn) { unreachable_ = std::move(fn); }

    enum class SendStatus { sent, blocked, failed };
    // Sends `data` as datagrams of `segment` bytes (the last one may be shorter) to `remote`,
    // from `local` when given (a server's per-datagram source address). `blocked`: the socket
    // buffer is full; *sent tells how many bytes went (a multiple of `segment`) and the caller
    // retries the rest once set_writable's function runs. `failed`: dropped (e.g. unreachable,
    // too big for the path), which QUIC treats as loss.
    SendStatus send(const Address &remote, const Address *local, std::span<const uint8_t> data,
                    size_t segment, size_t *sent = nullptr);

    // Virtual peer addresses (a peer reached through a TURN relay): send() to `peer` calls `via`
    // instead of the kernel, with the same arguments; an empty `via` removes the route. `peer` in
    // any form. The relay hands what it unwraps back through inject().
    using Route = std::function<SendStatus(std::span<const uint8_t> data, size_t segment)>;
    void set_route(const Address &peer, Route via);
    // One datagram straight to `remote` through the kernel, past any route (a path probe must
    // test the real path even when the peer's traffic currently goes through the relay).
    // `ttl` > 0 sends with that IP TTL / hop limit (a NAT keep-alive that must not leave the
    // local router), then restores the default.
    SendStatus send_unrouted(const Address &remote, std::span<const uint8_t> data, int ttl = 0);
    bool routed(const Address &peer) const;
    // Delivers a datagram that came another way (unwrapped from a relay) as if `remote` sent it
    // to this socket.
    void inject(std::span<const uint8_t> data, const Address &remote);

    // Path aliases (one peer reachable over several real paths: relayed, direct, punched): QUIC
    // datagrams from `real` reach the QUIC handler as if `as_remote` sent them to `as_local`, so
    // the connection keeps one path while the real one changes underneath. `real` may equal
    // `as_remote` (then only the local address is pinned). Every aliased address also records
    // when it last delivered anything, which is how a path's liveness is seen without probes.
    void set_alias(const Address &real, const Address &as_remote, const Address &as_local);
    void clear_alias(const Address &real);
    // Monotonic ns of the last datagram (QUIC or STUN) from the aliased `real`; 0 if none or unknown.
    uint64_t last_heard(const Address &real) const;

    struct Counters {
        uint64_t rx_datagrams = 0, rx_bytes = 0, rx_calls = 0;
        uint64_t tx_datagrams = 0, tx_bytes = 0, tx_calls = 0, tx_failed = 0;
        uint64_t dropped = 0;  // neither QUIC nor claimed by the STUN hook
        uint64_t icmp_errors = 0;
        bool gso = false, gro = false;
    };
    const Counters &counters() const { return counters_; }

private:
    static void on_poll(uv_poll_t *handle, int status, int events);
    void receive();
    void drain_errors();
    void dispatch(std::span<const uint8_t> data, const Address &remote, const Address &local,
                  uint8_t ecn);
    void update_poll();
    SendStatus send_one(const Address &remote, const Address *local, const uint8_t *data,
                        size_t len, size_t segment);

    int fd_ = -1;
    Address local_;
    bool dual_stack_ = false;
    bool gso_ = false;
    bool want_write_ = false;
    Handle<uv_poll_t> poll_;
    Handler quic_, stun_;
    std::function<void()> batch_end_, writable_;
    std::function<void(const Address &)> unreachable_;
    std::vector<std::pair<Address, Route>> routes_;  // few: one per relayed peer
    struct Alias {
        Address real, remote, local;
        uint64_t heard_ns = 0;
    };
    std::vector<Alias> aliases_;  // few: a handful per peer with path switching
    Counters counters_;

    struct RxSlot;
    std::vector<RxSlot> rx_;
    std::vector<uint8_t> rx_buffer_;
};

} // namespace pp::net
