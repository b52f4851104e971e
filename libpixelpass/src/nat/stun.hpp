// nat/stun: STUN messages (RFC 8489) and the TURN attributes (RFC 8656): building, parsing,
// MESSAGE-INTEGRITY (HMAC-SHA1 with the long-term key) and FINGERPRINT. Plain values, no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.hpp"

namespace pp::nat::stun {

inline constexpr uint32_t kMagicCookie = 0x2112A442;
inline constexpr size_t kHeaderSize = 20;

enum class Method : uint16_t {
    binding = 0x001,
    allocate = 0x003,
    refresh = 0x004,
    send = 0x006,
    data = 0x007,
    create_permission = 0x008,
    channel_bind = 0x009,
};

enum class Class : uint8_t { request = 0, indication = 1, success = 2, error = 3 };

namespace attr {
inline constexpr uint16_t mapped_address = 0x0001;
inline constexpr uint16_t username = 0x0006;
inline constexpr uint16_t message_integrity = 0x0008;
inline constexpr uint16_t error_code = 0x0009;
inline constexpr uint16_t channel_number = 0x000C;
inline constexpr uint16_t lifetime = 0x000D;
inline constexpr uint16_t xor_peer_address = 0x0012;
inline constexpr uint16_t data = 0x0013;
inline constexpr uint16_t realm = 0x0014;
inline constexpr uint16_t nonce = 0x0015;
inline constexpr uint16_t xor_relayed_address = 0x0016;
inline constexpr uint16_t requested_transport = 0x0019;
inline constexpr uint16_t dont_fragment = 0x001A;
inline constexpr uint16_t xor_mapped_address = 0x0020;
inline constexpr uint16_t software = 0x8022;
inline constexpr uint16_t fingerprint = 0x8028;
} // namespace attr

using TransactionId = std::array<uint8_t, 12>;
TransactionId new_transaction_id();

// Long-term credential key (RFC 8489 §9.2.2): MD5(username ":" realm ":" password).
std::vector<uint8_t> long_term_key(std::string_view username, std::string_view realm,
                                   std::string_view password);

class Builder {
public:
    Builder(Method method, Class cls, const TransactionId &tid);
    Builder &add(uint16_t type, std::span<const uint8_t> value);
    Builder &add(uint16_t type, std::string_view value);
    Builder &add_u32(uint16_t type, uint32_t value);
    // XOR-MAPPED/PEER/RELAYED-ADDRESS form (IPv4 or IPv6; v4-mapped is written as IPv4).
    Builder &add_xor_address(uint16_t type, const net::Address &address);
    // Appends MESSAGE-INTEGRITY keyed with `key` (when non-empty), then FINGERPRINT (when asked),
    // and returns the wire bytes.
    std::vector<uint8_t> finish(std::span<const uint8_t> key = {}, bool fingerprint = true);

private:
    void set_length(size_t body);
    std::vector<uint8_t> buf_;
};

struct Message {
    Method method{};
    Class cls{};
    TransactionId tid{};
    struct Attribute {
        uint16_t type;
        std::span<const uint8_t> value;
        size_t offset;  // of the attribute header in the message
    };
    std::vector<Attribute> attributes;
    std::span<const uint8_t> raw;

    const Attribute *find(uint16_t type) const;
    std::optional<net::Address> xor_address(uint16_t type) const;
    std::optional<uint32_t> u32(uint16_t type) const;
    std::string text(uint16_t type) const;
    // ERROR-CODE as a number (e.g. 401), 0 when absent or malformed (class outside 3..6, number
    // over 99); `reason` gets its phrase.
    int error_code(std::string *reason = nullptr) const;
    // MESSAGE-INTEGRITY is present and matches `key`.
    bool integrity_ok(std::span<const uint8_t> key) const;
};

// Parses a STUN message (the caller already saw the magic cookie). nullopt when malformed, or
// when a FINGERPRINT is present and wrong. The spans point into `data`.
std::optional<Message> parse(std::span<const uint8_t> data);

} // namespace pp::nat::stun
