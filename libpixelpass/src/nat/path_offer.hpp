// nat/path_offer: the viewer's GET /paths offer (header pixelpass-paths, JSON) as the host reads
// it: {"session": "...", "candidates": [["ip", port], ...], "relayed": ["ip", port]}. Whatever a
// ticket holder sends; parsing only, no I/O (fuzzed: tests/fuzz/paths_offer_fuzz.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.hpp"

namespace pp::nat {

// Candidates read from one offer; the rest of a longer list is ignored.
inline constexpr size_t kMaxOfferedCandidates = 64;

struct PathOffer {
    std::string session;
    std::vector<net::Address> candidates;
    net::Address relayed;  // empty() when the offer has none
};

// nullopt when the text is not such an offer (not JSON, wrong types, an address that does not
// parse, a port that is not a whole number in 0..65535).
std::optional<PathOffer> parse_path_offer(std::string_view text);

} // namespace pp::nat
