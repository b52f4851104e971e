// common/random: cryptographically strong random bytes (GnuTLS's nonce/key RNG).
#pragma once

#include <cstdint>
#include <span>

namespace pp {

// Fills `out` with key-quality random bytes; throws pp::Error(PP_ERR_CRYPTO) on failure.
void random_bytes(std::span<uint8_t> out);

} // namespace pp
