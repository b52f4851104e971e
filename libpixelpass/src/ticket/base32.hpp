// ticket/base32: RFC 4648 base32 without padding — lowercase out, either case in. The ticket uses
// it because it survives case changes by chat apps and has no 0/1/8/9 to confuse with O/l/B/g.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pp::ticket {

inline constexpr std::string_view kBase32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

// Characters needed for `bytes` bytes (no padding): ceil(8 * bytes / 5).
constexpr size_t base32_length(size_t bytes) { return (bytes * 8 + 4) / 5; }

std::string base32_encode(std::span<const uint8_t> bytes);

// Value 0..31 of a character in either case, or -1 if it is outside the alphabet.
int base32_value(char c);

// What a run of base32 values holds: every complete byte, plus the bits left over at the end
// (fewer than 8). In a canonical encoding fewer than 5 bits are left over and they are all zero.
struct Base32Bits {
    std::vector<uint8_t> bytes;
    unsigned leftover_bits = 0;
    unsigned leftover_value = 0;
};

// `values` are 0..31 (from base32_value); never fails, so a truncated text still yields its bytes.
Base32Bits base32_decode(std::span<const uint8_t> values);

} // namespace pp::ticket
