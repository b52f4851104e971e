// libFuzzer target for STUN/TURN messages as anyone who can reach the UDP port sends them (the
// host's agent, TURN client and path prober all read them through stun::parse): arbitrary bytes
// must parse or be refused without a crash, and what parses must keep every attribute inside the
// message, answer every accessor, and rebuild (Builder) into bytes that parse to the same
// attributes. MESSAGE-INTEGRITY is checked against a fixed key: a fuzzer cannot forge it, so a
// message that passes must be one we built. Each input is also tried with its header length and
// a trailing FINGERPRINT made right, so mutations get past those two checks to the attributes.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "nat/stun.hpp"
#include "ticket/crc32.hpp"

namespace stun = pp::nat::stun;

namespace {
void check(const uint8_t *data, size_t size) {
    static const std::vector<uint8_t> key = stun::long_term_key("user", "realm", "password");
    std::span<const uint8_t> bytes(data, size);
    auto m = stun::parse(bytes);
    if (!m) return;
    for (const auto &a : m->attributes) {
        if (a.offset + 4 + a.value.size() > size) std::abort();
        if (a.value.data() != data + a.offset + 4) std::abort();
    }
    for (uint16_t type : {stun::attr::xor_mapped_address, stun::attr::xor_peer_address,
                          stun::attr::xor_relayed_address, stun::attr::mapped_address})
        if (auto addr = m->xor_address(type)) (void)addr->to_string();
    (void)m->u32(stun::attr::lifetime);
    (void)m->text(stun::attr::username);
    (void)m->text(stun::attr::realm);
    std::string reason;
    // RFC 8489 14.8: class 3..6, number 0..99; anything else is no error code at all (class 3
    // number 101 must not pass for 401).
    int code = m->error_code(&reason);
    if (code != 0 && (code < 300 || code > 699)) std::abort();
    if (code == 0 && !reason.empty()) std::abort();
    (void)m->integrity_ok(key);
    // The rebuilt message adds MESSAGE-INTEGRITY and FINGERPRINT (32 bytes): keep it in range.
    if (size + 32 > stun::kHeaderSize + 0xffff) return;

    // Rebuild the attributes before any MESSAGE-INTEGRITY/FINGERPRINT, sign with our key: the
    // result must parse, verify, and hold the same attributes in the same order.
    stun::Builder b(m->method, m->cls, m->tid);
    std::vector<const stun::Message::Attribute *> kept;
    for (const auto &a : m->attributes) {
        if (a.type == stun::attr::message_integrity || a.type == stun::attr::fingerprint || a.type == 0x001C) break;
        b.add(a.type, a.value);
        kept.push_back(&a);
    }
    auto wire = b.finish(key, true);
    auto again = stun::parse(wire);
    if (!again || again->method != m->method || again->cls != m->cls || again->tid != m->tid) std::abort();
    if (!again->integrity_ok(key)) std::abort();
    if (again->attributes.size() != kept.size() + 2) std::abort();
    for (size_t i = 0; i < kept.size(); ++i) {
        const auto &x = again->attributes[i];
        if (x.type != kept[i]->type || !std::equal(x.value.begin(), x.value.end(), kept[i]->value.begin(),
                                                   kept[i]->value.end()))
            std::abort();
    }
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size);
    if (size < stun::kHeaderSize || size % 4 || size - stun::kHeaderSize > 0xffff) return 0;
    std::vector<uint8_t> fixed(data, data + size);
    size_t body = size - stun::kHeaderSize;
    fixed[2] = uint8_t(body >> 8);
    fixed[3] = uint8_t(body);
    if (size >= stun::kHeaderSize + 8 && fixed[size - 8] == 0x80 && fixed[size - 7] == 0x28 && fixed[size - 6] == 0 &&
        fixed[size - 5] == 4) {
        uint32_t crc = pp::ticket::crc32(std::span(fixed).first(size - 8)) ^ 0x5354554e;
        for (int i = 0; i < 4; ++i) fixed[size - 4 + i] = uint8_t(crc >> (24 - 8 * i));
    }
    check(fixed.data(), fixed.size());
    return 0;
}
