// libFuzzer target for NAT-PMP responses as our process reads them: the datagram arrives on a
// real UDP socket (loopback) from the address libnatpmp believes is the gateway, libnatpmp
// decodes it (natpmp_read_answer: readnatpmpresponseorretry with a request pending, as in
// NatPmp::answer, behind our length and match checks). Nothing may crash; only a whole UDP
// mapping response (16 bytes or more, opcode 129, our internal port) is taken for our mapping.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <natpmp.h>

#include "nat/portmap_wire.hpp"

namespace portmap = pp::nat::portmap;

namespace {
struct Pair {
    int gateway = -1;  // sends the fuzzed response
    int client = -1;   // libnatpmp's socket
    Pair() {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        gateway = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        client = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_in g = a, c = a;
        if (::bind(gateway, reinterpret_cast<sockaddr *>(&g), sizeof g) != 0 ||
            ::bind(client, reinterpret_cast<sockaddr *>(&c), sizeof c) != 0 ||
            ::getsockname(gateway, reinterpret_cast<sockaddr *>(&g), &len) != 0 ||
            ::getsockname(client, reinterpret_cast<sockaddr *>(&client_addr), &(len = sizeof client_addr)) != 0 ||
            ::connect(client, reinterpret_cast<sockaddr *>(&g), sizeof g) != 0) {
            std::perror("natpmp_fuzz: loopback UDP sockets");
            std::abort();
        }
    }
    sockaddr_in client_addr{};
};
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static Pair pair;
    if (size > 1100) return 0;  // one datagram of what our reads take
    constexpr uint16_t port = 4433;
    // As after sendnewportmappingrequest(): a pending UDP mapping request for `port`.
    natpmp_t n{};
    n.s = pair.client;
    n.gateway = htonl(INADDR_LOOPBACK);
    n.has_pending_request = 1;
    n.pending_request[0] = 0;
    n.pending_request[1] = 1;
    n.pending_request_len = 12;
    gettimeofday(&n.retry_time, nullptr);
    n.retry_time.tv_sec += 60;  // no retransmission from here
    if (::sendto(pair.gateway, data, size, 0, reinterpret_cast<sockaddr *>(&pair.client_addr),
                 sizeof pair.client_addr) != ssize_t(size))
        std::abort();
    natpmpresp_t r{};
    int rc = portmap::natpmp_read_answer(n, r, NATPMP_RESPTYPE_UDPPORTMAPPING, port);
    if (rc < 0) {
        // Not taken: the request stays pending, and the datagram is consumed either way.
        if (rc == NATPMP_TRYAGAIN && !n.has_pending_request) std::abort();
        uint8_t left[1];
        if (::recv(pair.client, left, sizeof left, MSG_DONTWAIT) >= 0) std::abort();
        return 0;
    }
    if (size < 16 || data[0] != 0 || data[1] != 129 || (data[8] << 8 | data[9]) != port) std::abort();
    if (r.pnu.newportmapping.privateport != port) std::abort();
    return 0;
}
