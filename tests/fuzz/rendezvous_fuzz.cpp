// libFuzzer target for what a DHT stranger can put at a rendezvous key: open() on arbitrary bytes
// (must refuse them without crashing) and, since nobody can forge the AEAD tag, the plaintext
// parser behind it on arbitrary text. Whatever parses must hold at most kMaxCandidates and reseal.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "rendezvous/seal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const std::vector<uint8_t> secret(32, 0x5a);
    if (pp::rendezvous::open({data, size}, secret, 1'800'000'000)) std::abort();  // a forged tag opened
    auto offer = pp::rendezvous::parse_offer(std::string_view(reinterpret_cast<const char *>(data), size));
    if (offer) {
        if (offer->candidates.size() > pp::rendezvous::kMaxCandidates) std::abort();
        auto sealed = pp::rendezvous::seal(*offer, secret);
        auto back = pp::rendezvous::open(sealed, secret, offer->issued);
        if (!back || back->candidates != offer->candidates || back->session != offer->session) std::abort();
    }
    return 0;
}
