#include "nat/portmap_wire.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace pp::nat::portmap {

namespace {
constexpr size_t kPcpMapSize = 60;  // common header (24) + MAP opcode data (36)
constexpr uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
} // namespace

const char *pcp_result_text(int code) {
    switch (code) {
    case 1: return "UNSUPP_VERSION (the gateway speaks NAT-PMP only)";
    case 2: return "NOT_AUTHORIZED (mappings are disabled or not allowed for this address)";
    case 3: return "MALFORMED_REQUEST";
    case 4: return "UNSUPP_OPCODE";
    case 7: return "NETWORK_FAILURE (the gateway has no public address yet)";
    case 8: return "NO_RESOURCES";
    case 9: return "UNSUPP_PROTOCOL";
    case 10: return "USER_EX_QUOTA";
    case 11: return "CANNOT_PROVIDE_EXTERNAL";
    case 12: return "ADDRESS_MISMATCH (another NAT between us and the gateway)";
    default: return "error";
    }
}

PcpReply parse_pcp_reply(std::span<const uint8_t> b, const std::array<uint8_t, 12> &nonce, uint16_t internal_port) {
    PcpReply r;
    // A NAT-PMP-only gateway answers any version-2 request with version 0 "unsupported version".
    if (b.size() >= 4 && b[0] == 0) {
        r.kind = PcpReply::natpmp_only;
        return r;
    }
    if (b.size() < kPcpMapSize || b[0] != 2 || b[1] != (0x80 | 1)) return r;
    // RFC 6887 §11.3: a response is ours when nonce, protocol and internal port match.
    if (std::memcmp(b.data() + 24, nonce.data(), nonce.size()) != 0) return r;
    if (b[36] != IPPROTO_UDP || uint16_t(b[40] << 8 | b[41]) != internal_port) return r;
    if (b[3] != 0) {
        r.kind = PcpReply::refused;
        r.result = b[3];
        return r;
    }
    // We asked for IPv4: an external address that is not v4-mapped is not an answer we can use.
    if (std::memcmp(b.data() + 44, kV4Mapped, sizeof kV4Mapped) != 0) return r;
    r.kind = PcpReply::mapped;
    r.lifetime = uint32_t(b[4]) << 24 | uint32_t(b[5]) << 16 | uint32_t(b[6]) << 8 | b[7];
    r.external_port = uint16_t(b[42] << 8 | b[43]);
    char text[INET_ADDRSTRLEN] = "";
    ::inet_ntop(AF_INET, b.data() + 56, text, sizeof text);
    r.external_ip = text;
    return r;
}

bool natpmp_reply_matches(const natpmpresp_t &response, uint16_t expected_type, uint16_t internal_port) {
    if (response.type != expected_type) return false;
    if (expected_type == NATPMP_RESPTYPE_PUBLICADDRESS) return true;
    return response.pnu.newportmapping.privateport == internal_port;
}

int natpmp_read_answer(natpmp_t &n, natpmpresp_t &response, uint16_t expected_type, uint16_t internal_port) {
    if (n.has_pending_request) {
        uint8_t head[16];
        ssize_t len = ::recv(n.s, head, sizeof head, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
        // RFC 6886: 12 bytes for the public address, 16 for a mapping.
        size_t need = expected_type == NATPMP_RESPTYPE_PUBLICADDRESS ? 12 : 16;
        // A socket error (ICMP port unreachable: ECONNREFUSED) is consumed by this read: report it
        // as libnatpmp would, errno intact.
        if (len < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return NATPMP_ERR_RECVFROM;
        if (len >= 0 && size_t(len) < need) {
            (void)::recv(n.s, head, sizeof head, MSG_DONTWAIT);
            return NATPMP_TRYAGAIN;
        }
    }
    int rc = readnatpmpresponseorretry(&n, &response);
    if (rc >= 0 && !natpmp_reply_matches(response, expected_type, internal_port)) {
        n.has_pending_request = 1;  // libnatpmp cleared it on reading a response
        return NATPMP_TRYAGAIN;
    }
    return rc;
}

} // namespace pp::nat::portmap
