// common/hex: lowercase hex for fingerprints and short hashes in JSON and logs.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace pp {

std::string to_hex(std::span<const uint8_t> bytes);

} // namespace pp
