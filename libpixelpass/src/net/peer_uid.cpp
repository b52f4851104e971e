#include "net/peer_uid.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pp::net {
namespace {

// Closes the netlink socket on every path.
struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

// The inet_diag id of the peer's socket: its source is our peer address, its destination our
// local address (the kernel looks sockets up from their own point of view).
bool peer_id(int fd, inet_diag_req_v2 &req, std::string &error) {
    sockaddr_storage local{}, peer{};
    socklen_t llen = sizeof local, plen = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&local), &llen) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &plen) != 0) {
        error = std::string("the connection has no addresses: ") + std::strerror(errno);
        return false;
    }
    if (local.ss_family != peer.ss_family || (local.ss_family != AF_INET && local.ss_family != AF_INET6)) {
        error = "not a TCP/IP connection";
        return false;
    }
    req.sdiag_family = static_cast<uint8_t>(local.ss_family);
    req.sdiag_protocol = IPPROTO_TCP;
    req.idiag_states = ~0u;
    req.id.idiag_cookie[0] = req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (local.ss_family == AF_INET) {
        const auto &l = reinterpret_cast<const sockaddr_in &>(local);
        const auto &p = reinterpret_cast<const sockaddr_in &>(peer);
        req.id.idiag_sport = p.sin_port;
        req.id.idiag_dport = l.sin_port;
        std::memcpy(req.id.idiag_src, &p.sin_addr, 4);
        std::memcpy(req.id.idiag_dst, &l.sin_addr, 4);
    } else {
        const auto &l = reinterpret_cast<const sockaddr_in6 &>(local);
        const auto &p = reinterpret_cast<const sockaddr_in6 &>(peer);
        req.id.idiag_sport = p.sin6_port;
        req.id.idiag_dport = l.sin6_port;
        std::memcpy(req.id.idiag_src, &p.sin6_addr, 16);
        std::memcpy(req.id.idiag_dst, &l.sin6_addr, 16);
    }
    return true;
}

} // namespace

PeerUid loopback_peer_uid(int fd) {
    PeerUid out;
    struct {
        nlmsghdr nlh;
        inet_diag_req_v2 req;
    } msg{};
    if (!peer_id(fd, msg.req, out.error)) return out;
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST;  // an exact lookup by id, not a dump

    Fd nl{socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
    if (nl.fd < 0) {
        out.error = std::string("sock_diag is unavailable: ") + std::strerror(errno);
        return out;
    }
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(nl.fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr *>(&kernel), sizeof kernel) < 0) {
        out.error = std::string("sock_diag request failed: ") + std::strerror(errno);
        return out;
    }
    alignas(nlmsghdr) char buf[8192];
    ssize_t n = recv(nl.fd, buf, sizeof buf, 0);
    if (n < 0) {
        out.error = std::string("sock_diag answer failed: ") + std::strerror(errno);
        return out;
    }
    for (auto *h = reinterpret_cast<nlmsghdr *>(buf); NLMSG_OK(h, static_cast<unsigned>(n)); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
            const auto *e = static_cast<const nlmsgerr *>(NLMSG_DATA(h));
            out.error = e->error == -ENOENT ? "the peer's socket is gone (it closed, or lives in another network namespace)"
                                            : std::string("sock_diag: ") + std::strerror(-e->error);
            return out;
        }
        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg))) {
            const auto *m = static_cast<const inet_diag_msg *>(NLMSG_DATA(h));
            out.uid = m->idiag_uid;
            return out;
        }
    }
    out.error = "sock_diag gave no answer for the peer's socket";
    return out;
}

} // namespace pp::net
