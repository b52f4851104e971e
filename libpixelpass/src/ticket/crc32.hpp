// ticket/crc32: the CRC-32 of zlib, PNG and Ethernet (reflected polynomial 0xEDB88320), which
// catches every change of up to 32 consecutive bits — so every single mistyped ticket character.
#pragma once

#include <cstdint>
#include <span>

namespace pp::ticket {

// crc32("123456789") == 0xCBF43926.
uint32_t crc32(std::span<const uint8_t> bytes);

} // namespace pp::ticket
