#include "common/random.hpp"

#include <gnutls/crypto.h>

#include "common/error.hpp"

namespace pp {

void random_bytes(std::span<uint8_t> out) {
    if (out.empty()) return;
    int rc = gnutls_rnd(GNUTLS_RND_KEY, out.data(), out.size());
    if (rc < 0) throw Error(PP_ERR_CRYPTO, std::string("random generator failed: ") + gnutls_strerror(rc));
}

} // namespace pp
