// nat/portmap_wire: what the gateway answers to our port-mapping requests, read from bytes: PCP
// MAP responses (RFC 6887 §7.2, §11.2) and the check of a NAT-PMP response libnatpmp decoded
// (RFC 6886 §3.3). Whoever can send UDP to our port 5351 socket's address can answer, so every
// field is checked against the request. Pure functions (fuzzed: tests/fuzz/pcp_fuzz.cpp,
// tests/fuzz/natpmp_fuzz.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include <natpmp.h>

namespace pp::nat::portmap {

struct PcpReply {
    enum Kind {
        ignore,       // not an answer to our request: keep waiting
        natpmp_only,  // a version 0 answer: the gateway speaks NAT-PMP, not PCP
        refused,      // our answer, with a non-zero result code
        mapped,       // our answer: the mapping was made
    } kind = ignore;
    int result = 0;  // refused: the PCP result code
    uint32_t lifetime = 0;
    uint16_t external_port = 0;
    std::string external_ip;  // dotted IPv4
};

// Reads a datagram received on the PCP socket as the answer to our MAP request for UDP
// `internal_port` with `nonce`: version 2, opcode MAP response, 60 bytes or more, the same nonce,
// protocol and internal port; a success names an IPv4 (v4-mapped) external address.
PcpReply parse_pcp_reply(std::span<const uint8_t> datagram, const std::array<uint8_t, 12> &nonce,
                         uint16_t internal_port);

// The PCP result code's name and what it means for the user.
const char *pcp_result_text(int code);

// Whether a response libnatpmp decoded answers our request: the response type we asked for
// (libnatpmp hands back whichever type arrived) and, for a mapping, our internal port.
bool natpmp_reply_matches(const natpmpresp_t &response, uint16_t expected_type, uint16_t internal_port);

// libnatpmp's readnatpmpresponseorretry() for the pending request of type `expected_type`, with
// what it lacks: a datagram shorter than that response (libnatpmp would decode stale stack bytes
// as its fields) is read and dropped, and a response that does not match (above) leaves the
// request pending. Returns libnatpmp's code; NATPMP_TRYAGAIN while no fitting answer came.
int natpmp_read_answer(natpmp_t &n, natpmpresp_t &response, uint16_t expected_type, uint16_t internal_port);

} // namespace pp::nat::portmap
