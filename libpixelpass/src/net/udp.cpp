#include "net/udp.hpp"

#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.hpp"
#include "net/timer.hpp"

namespace pp::net {

namespace {

constexpr size_t kBatch = 16;            // datagrams per recvmmsg
constexpr size_t kSlotBytes = 65536;     // one GRO super-datagram, or the largest UDP payload
constexpr size_t kMaxBatchesPerWake = 8; // then let the loop run writes and timers
constexpr size_t kMaxGsoSegments = 64;   // UDP_MAX_SEGMENTS in Linux
constexpr size_t kMaxGsoBytes = 65000;   // below the 64 KiB IP datagram limit with headers
constexpr size_t kControlBytes = 256;

int set_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}


// A bound non-blocking socket of `address`'s family; -1 with errno set on failure.
int open_bound(const Address &address, bool dual_stack) {
    int fd = socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (address.family() == AF_INET6) set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? 0 : 1);
    if (bind(fd, address.sa(), address.len()) != 0) {
        int saved = errno;
        ::close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

// A STUN message (RFC 8489): top two bits 00, a length that is a multiple of 4 and the magic
// cookie. QUIC alone cannot be told apart by the first byte: ngtcp2 greases the fixed bit
// (RFC 9287), so a QUIC short header may start with 00 too.
bool is_stun(std::span<const uint8_t> d) {
    return d.size() >= 20 && (d[0] & 0xc0) == 0 && d[4] == 0x21 && d[5] == 0x12 && d[6] == 0xa4 &&
           d[7] == 0x42 && ((static_cast<size_t>(d[2]) << 8 | d[3]) + 20 == d.size());
}

} // namespace

struct UdpSocket::RxSlot {
    sockaddr_storage name;
    iovec iov;
    alignas(cmsghdr) uint8_t control[kControlBytes];
};

UdpSocket::UdpSocket(Loop &loop, const UdpOptions &options) {
    if (options.bind_ip.empty()) {
        // One dual-stack socket reaches IPv4 and IPv6 peers: fall back to IPv4 only when the
        // machine has no IPv6.
        fd_ = open_bound(Address::any(AF_INET6, options.port), true);
        dual_stack_ = fd_ >= 0;
        if (fd_ < 0) fd_ = open_bound(Address::any(AF_INET, options.port), false);
        if (fd_ < 0)
            throw Error(PP_ERR_IO, "cannot bind UDP port " + std::to_string(options.port) + ": " +
                                       std::strerror(errno));
    } else {
        Address address = Address::parse(options.bind_ip, options.port);
        fd_ = open_bound(address, false);
        if (fd_ < 0)
            throw Error(PP_ERR_IO, "cannot bind UDP " + address.to_string() + ": " + std::strerror(errno));
    }

    sockaddr_storage bound{};
    socklen_t bound_len = sizeof bound;
    getsockname(fd_, reinterpret_cast<sockaddr *>(&bound), &bound_len);
    local_ = Address(reinterpret_cast<sockaddr *>(&bound), bound_len);

    // Big buffers absorb bursts at gigabit rates; the FORCE variants pass rmem_max/wmem_max when
    // privileged, the plain ones are capped by them otherwise.
    if (set_int(fd_, SOL_SOCKET, SO_RCVBUFFORCE, options.buffer_bytes) != 0)
        set_int(fd_, SOL_SOCKET, SO_RCVBUF, options.buffer_bytes);
    if (set_int(fd_, SOL_SOCKET, SO_SNDBUFFORCE, options.buffer_bytes) != 0)
        set_int(fd_, SOL_SOCKET, SO_SNDBUF, options.buffer_bytes);

    // ICMP errors (port unreachable when a peer's process died) are queued for us to read.
    if (local_.family() == AF_INET6) set_int(fd_, IPPROTO_IPV6, IPV6_RECVERR, 1);
    if (local_.family() == AF_INET || dual_stack_) set_int(fd_, IPPROTO_IP, IP_RECVERR, 1);
    if (local_.family() == AF_INET6) {
        set_int(fd_, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
        set_int(fd_, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE);
        if (dual_stack_) set_int(fd_, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE);
    } else {
        set_int(fd_, IPPROTO_IP, IP_PKTINFO, 1);
        // QUIC does its own path MTU discovery: set DF, never fragment, ignore the kernel's cache.
        set_int(fd_, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE);
    }
    if (options.gro && set_int(fd_, IPPROTO_UDP, UDP_GRO, 1) == 0) counters_.gro = true;
    if (options.gso) {
        int value = 0;
        socklen_t len = sizeof value;
        gso_ = getsockopt(fd_, IPPROTO_UDP, UDP_SEGMENT, &value, &len) == 0;
    }
    counters_.gso = gso_;

    size_t batch = std::clamp<size_t>(options.rx_batch, 1, kBatch);
    rx_.resize(batch);
    rx_buffer_.resize(batch * kSlotBytes);

    int rc = uv_poll_init(loop.uv(), poll_.get(), fd_);
    if (rc < 0) {
        ::close(fd_);
        throw Error(PP_ERR_IO, std::string("UDP poll: ") + uv_strerror(rc));
    }
    poll_.initialized();
    poll_.get()->data = this;
    update_poll();
}

UdpSocket::~UdpSocket() {
    poll_.close();
    if (fd_ >= 0) ::close(fd_);
}

Address UdpSocket::sendable(const Address &remote) const {
    Address r = remote.unmapped();
    if (local_.family() == AF_INET) return r.family() == AF_INET ? r : Address();
    if (r.family() == AF_INET) return dual_stack_ ? r.to_v4_mapped() : Address();
    return r;
}

void UdpSocket::update_poll() {
    int events = UV_READABLE | (want_write_ ? UV_WRITABLE : 0);
    uv_poll_start(poll_.get(), events, &UdpSocket::on_poll);
}

void UdpSocket::on_poll(uv_poll_t *handle, int status, int events) {
    auto *self = static_cast<UdpSocket *>(handle->data);
    if (!self) return;
    if (status < 0) {
        // libuv reports POLLERR (a queued ICMP error) this way and stops the handle: read the
        // error queue, watch again, and read whatever data came with it.
        self->drain_errors();
        self->update_poll();
        events = UV_READABLE;
    }
    if (events & UV_WRITABLE) {
        self->want_write_ = false;
        self->update_poll();
        if (self->writable_) self->writable_();
    }
    if (events & UV_READABLE) self->receive();
}

void UdpSocket::receive() {
    mmsghdr msgs[kBatch];
    const size_t slots = rx_.size();
    for (size_t batch = 0; batch < kMaxBatchesPerWake; ++batch) {
        for (size_t i = 0; i < slots; ++i) {
            RxSlot &slot = rx_[i];
            slot.iov = {rx_buffer_.data() + i * kSlotBytes, kSlotBytes};
            msghdr &h = msgs[i].msg_hdr;
            h = {};
            h.msg_name = &slot.name;
            h.msg_namelen = sizeof slot.name;
            h.msg_iov = &slot.iov;
            h.msg_iovlen = 1;
            h.msg_control = slot.control;
            h.msg_controllen = sizeof slot.control;
            msgs[i].msg_len = 0;
        }
        int n = recvmmsg(fd_, msgs, static_cast<unsigned>(slots), 0, nullptr);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                drain_errors();  // an ICMP report took the place of data: there may be more
                continue;
            }
            break;
        }
        ++counters_.rx_calls;
        for (int i = 0; i < n; ++i) {
            msghdr &h = msgs[i].msg_hdr;
            size_t len = msgs[i].msg_len;
            if (h.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
                ++counters_.dropped;
                continue;
            }
            Address remote(static_cast<sockaddr *>(h.msg_name), h.msg_namelen);
            Address local = local_;
            size_t segment = 0;
            uint8_t ecn = 0;
            for (cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
                if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                    in6_pktinfo info;
                    std::memcpy(&info, CMSG_DATA(c), sizeof info);
                    sockaddr_in6 a{};
                    a.sin6_family = AF_INET6;
                    a.sin6_addr = info.ipi6_addr;
                    a.sin6_port = htons(local_.port());
                    if (IN6_IS_ADDR_LINKLOCAL(&a.sin6_addr)) a.sin6_scope_id = info.ipi6_ifindex;
                    local = Address(reinterpret_cast<sockaddr *>(&a), sizeof a);
                } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                    in_pktinfo info;
                    std::memcpy(&info, CMSG_DATA(c), sizeof info);
                    sockaddr_in a{};
                    a.sin_family = AF_INET;
                    a.sin_addr = info.ipi_addr;
                    a.sin_port = htons(local_.port());
                    local = Address(reinterpret_cast<sockaddr *>(&a), sizeof a);
                    if (local_.family() == AF_INET6) local = local.to_v4_mapped();
                } else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
                    int size = 0;
                    std::memcpy(&size, CMSG_DATA(c), sizeof size);
                    if (size > 0) segment = static_cast<size_t>(size);
                }
            }
            const uint8_t *data = rx_buffer_.data() + static_cast<size_t>(i) * kSlotBytes;
            if (segment == 0 || segment >= len) {
                dispatch({data, len}, remote, local, ecn);
            } else {
                for (size_t off = 0; off < len; off += segment)
                    dispatch({data + off, std::min(segment, len - off)}, remote, local, ecn);
            }
        }
        if (static_cast<size_t>(n) < slots) break;
    }
    if (batch_end_) batch_end_();
}

void UdpSocket::drain_errors() {
    for (int i = 0; i < 64; ++i) {
        sockaddr_storage name{};
        uint8_t data[64];
        iovec iov{data, sizeof data};
        alignas(cmsghdr) uint8_t control[512];
        msghdr h{};
        h.msg_name = &name;
        h.msg_namelen = sizeof name;
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        h.msg_control = control;
        h.msg_controllen = sizeof control;
        if (recvmsg(fd_, &h, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
        for (cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
            bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
            bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
            if (!v4 && !v6) continue;
            sock_extended_err err;
            std::memcpy(&err, CMSG_DATA(c), sizeof err);
            if (err.ee_origin != SO_EE_ORIGIN_ICMP && err.ee_origin != SO_EE_ORIGIN_ICMP6) continue;
            if (err.ee_errno != ECONNREFUSED && err.ee_errno != EHOSTUNREACH && err.ee_errno != ENETUNREACH)
                continue;  // e.g. EMSGSIZE: path MTU, QUIC handles that itself
            ++counters_.icmp_errors;
            // msg_name is the original destination of the datagram that bounced.
            Address dest(reinterpret_cast<sockaddr *>(&name), h.msg_namelen);
            if (unreachable_ && !dest.empty()) unreachable_(dest);
        }
    }
}

void UdpSocket::dispatch(std::span<const uint8_t> data, const Address &remote,
                         const Address &local, uint8_t ecn) {
    ++counters_.rx_datagrams;
    counters_.rx_bytes += data.size();
    Alias *alias = nullptr;
    if (!aliases_.empty())
        for (auto &a : aliases_)
            if (a.real == remote) {
                alias = &a;
                a.heard_ns = monotonic_ns();
                break;
            }
    Datagram d{data, remote, local, ecn};
    if (data.empty()) {
        ++counters_.dropped;
    } else if (is_stun(data)) {
        if (stun_)
            stun_(d);
        else
            ++counters_.dropped;
    } else if (quic_) {
        if (alias)
            quic_(Datagram{data, alias->remote, alias->local.empty() ? local : alias->local, ecn});
        else
            quic_(d);
    } else {
        ++counters_.dropped;
    }
}

UdpSocket::SendStatus UdpSocket::send(const Address &remote, const Address *local,
                                      std::span<const uint8_t> data, size_t segment, size_t *sent) {
    if (sent) *sent = 0;
    if (segment == 0) segment = data.size();
    if (!routes_.empty()) {
        for (auto &[peer, via] : routes_)
            if (peer == remote) {
                SendStatus st = via(data, segment);
                if (sent && st == SendStatus::sent) *sent = data.size();
                return st;
            }
    }
    size_t done = 0;
    SendStatus result = SendStatus::sent;
    while (done < data.size()) {
        size_t left = data.size() - done;
        size_t len = std::min(left, segment);
        if (gso_ && left > segment) {
            size_t max_segments = std::min(kMaxGsoSegments, std::max<size_t>(1, kMaxGsoBytes / segment));
            len = std::min(left, segment * max_segments);
        }
        SendStatus st = send_one(remote, local, data.data() + done, len, segment);
        if (st == SendStatus::blocked) {
            if (sent) *sent = done;
            want_write_ = true;
            update_poll();
            return SendStatus::blocked;
        }
        if (st == SendStatus::failed) result = SendStatus::failed;
        done += len;
    }
    if (sent) *sent = done;
    return result;
}

UdpSocket::SendStatus UdpSocket::send_unrouted(const Address &remote, std::span<const uint8_t> data, int ttl) {
    Address target = sendable(remote);
    if (target.empty() || data.empty()) return SendStatus::failed;
    if (ttl <= 0) return send_one(target, nullptr, data.data(), data.size(), data.size());
    // IPv4 (also v4-mapped on a dual-stack socket) takes IP_TTL, IPv6 the unicast hop limit;
    // -1 puts the system default back.
    bool v6 = remote.unmapped().family() == AF_INET6;
    int level = v6 ? IPPROTO_IPV6 : IPPROTO_IP, name = v6 ? IPV6_UNICAST_HOPS : IP_TTL;
    if (set_int(fd_, level, name, ttl) != 0) return SendStatus::failed;
    SendStatus st = send_one(target, nullptr, data.data(), data.size(), data.size());
    set_int(fd_, level, name, -1);
    return st;
}

void UdpSocket::set_route(const Address &peer, Route via) {
    Address key = sendable(peer);
    if (key.empty()) key = peer;
    std::erase_if(routes_, [&](const auto &r) { return r.first == key; });
    if (via) routes_.emplace_back(key, std::move(via));
}

bool UdpSocket::routed(const Address &peer) const {
    Address key = sendable(peer);
    if (key.empty()) key = peer;
    for (const auto &r : routes_)
        if (r.first == key) return true;
    return false;
}

void UdpSocket::set_alias(const Address &real, const Address &as_remote, const Address &as_local) {
    Address key = sendable(real);
    if (key.empty()) key = real;
    Address remote = sendable(as_remote);
    if (remote.empty()) remote = as_remote;
    for (auto &a : aliases_)
        if (a.real == key) {
            a.remote = remote;
            a.local = as_local;
            return;
        }
    aliases_.push_back({key, remote, as_local, 0});
}

void UdpSocket::clear_alias(const Address &real) {
    Address key = sendable(real);
    if (key.empty()) key = real;
    std::erase_if(aliases_, [&](const Alias &a) { return a.real == key; });
}

uint64_t UdpSocket::last_heard(const Address &real) const {
    Address key = sendable(real);
    if (key.empty()) key = real;
    for (const auto &a : aliases_)
        if (a.real == key) return a.heard_ns;
    return 0;
}

void UdpSocket::inject(std::span<const uint8_t> data, const Address &remote) {
    Address from = sendable(remote);
    if (from.empty()) from = remote;
    dispatch(data, from, local_, 0);
}

UdpSocket::SendStatus UdpSocket::send_one(const Address &remote, const Address *local,
                                          const uint8_t *data, size_t len, size_t segment) {
    for (;;) {
        iovec iov{const_cast<uint8_t *>(data), len};
        msghdr h{};
        h.msg_name = const_cast<sockaddr *>(remote.sa());
        h.msg_namelen = remote.len();
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        alignas(cmsghdr) uint8_t control[kControlBytes] = {};
        size_t control_len = 0;
        auto add = [&](int level, int type, const void *value, size_t size) {
            auto *c = reinterpret_cast<cmsghdr *>(control + control_len);
            c->cmsg_level = level;
            c->cmsg_type = type;
            c->cmsg_len = CMSG_LEN(size);
            std::memcpy(CMSG_DATA(c), value, size);
            control_len += CMSG_SPACE(size);
        };
        if (local && !local->empty() && !local->is_any()) {
            if (local_.family() == AF_INET && local->family() == AF_INET) {
                in_pktinfo info{};
                info.ipi_spec_dst = reinterpret_cast<const sockaddr_in *>(local->sa())->sin_addr;
                add(IPPROTO_IP, IP_PKTINFO, &info, sizeof info);
            } else if (local_.family() == AF_INET6 && local->family() == AF_INET6) {
                in6_pktinfo info{};
                info.ipi6_addr = reinterpret_cast<const sockaddr_in6 *>(local->sa())->sin6_addr;
                info.ipi6_ifindex = reinterpret_cast<const sockaddr_in6 *>(local->sa())->sin6_scope_id;
                add(IPPROTO_IPV6, IPV6_PKTINFO, &info, sizeof info);
            }
        }
        bool segmented = len > segment;
        if (segmented) {
            uint16_t size = static_cast<uint16_t>(segment);
            add(IPPROTO_UDP, UDP_SEGMENT, &size, sizeof size);
        }
        if (control_len) {
            h.msg_control = control;
            h.msg_controllen = control_len;
        }
        ssize_t n = sendmsg(fd_, &h, 0);
        if (n >= 0) {
            ++counters_.tx_calls;
            counters_.tx_bytes += len;
            counters_.tx_datagrams += segmented ? (len + segment - 1) / segment : 1;
            return SendStatus::sent;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return SendStatus::blocked;
        if (segmented && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
            // No GSO on this path (e.g. a device without checksum offload): datagram by datagram.
            gso_ = false;
            counters_.gso = false;
            for (size_t off = 0; off < len; off += segment) {
                SendStatus st = send_one(remote, local, data + off, std::min(segment, len - off),
                                         std::min(segment, len - off));
                // Rare: the caller retries the whole batch, and QUIC drops the duplicates.
                if (st == SendStatus::blocked) return st;
            }
            return SendStatus::sent;
        }
        ++counters_.tx_failed;
        return SendStatus::failed;
    }
}

} // namespace pp::net
