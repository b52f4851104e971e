// libFuzzer target for PCP MAP responses (what arrives on the socket we sent a MAP request from):
// arbitrary datagrams are read against a fixed request (nonce, UDP, internal port 4433). Only a
// datagram that carries the request's nonce, protocol and port may be taken as an answer, a
// mapping names a dotted IPv4 external address, and a refusal has a non-zero result code.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "nat/portmap_wire.hpp"

namespace portmap = pp::nat::portmap;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const std::array<uint8_t, 12> nonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    constexpr uint16_t port = 4433;
    auto r = portmap::parse_pcp_reply(std::span(data, size), nonce, port);
    if (r.kind == portmap::PcpReply::natpmp_only && (size < 4 || data[0] != 0)) std::abort();
    if (r.kind == portmap::PcpReply::refused || r.kind == portmap::PcpReply::mapped) {
        if (size < 60 || data[0] != 2 || data[1] != 0x81) std::abort();
        if (std::memcmp(data + 24, nonce.data(), nonce.size()) != 0) std::abort();
        if (data[36] != IPPROTO_UDP || (data[40] << 8 | data[41]) != port) std::abort();
    }
    if (r.kind == portmap::PcpReply::refused && (r.result == 0 || r.result != data[3])) std::abort();
    (void)portmap::pcp_result_text(r.result);
    if (r.kind == portmap::PcpReply::mapped) {
        in_addr a{};
        if (data[3] != 0 || ::inet_pton(AF_INET, r.external_ip.c_str(), &a) != 1) std::abort();
        if (std::memcmp(&a, data + 56, 4) != 0) std::abort();
    }
    return 0;
}
