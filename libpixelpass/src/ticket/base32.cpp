#include "ticket/base32.hpp"

namespace pp::ticket {

std::string base32_encode(std::span<const uint8_t> bytes) {
    std::string out;
    out.reserve(base32_length(bytes.size()));
    uint32_t acc = 0;  // never holds more than 12 bits
    unsigned bits = 0;
    for (uint8_t b : bytes) {
        acc = (acc << 8) | b;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out.push_back(kBase32Alphabet[(acc >> bits) & 31]);
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0) out.push_back(kBase32Alphabet[(acc << (5 - bits)) & 31]);
    return out;
}

int base32_value(char c) {
    if (c >= 'a' && c <= 'z') return c - 'a';
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= '2' && c <= '7') return c - '2' + 26;
    return -1;
}

Base32Bits base32_decode(std::span<const uint8_t> values) {
    Base32Bits out;
    out.bytes.reserve(values.size() * 5 / 8);
    uint32_t acc = 0;
    unsigned bits = 0;
    for (uint8_t v : values) {
        acc = (acc << 5) | (v & 31);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out.bytes.push_back(static_cast<uint8_t>(acc >> bits));
        }
        acc &= (1u << bits) - 1;
    }
    out.leftover_bits = bits;
    out.leftover_value = acc;
    return out;
}

} // namespace pp::ticket
