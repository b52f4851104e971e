// libFuzzer target for the /paths request body (header pixelpass-paths): what any ticket holder
// sends the host. Arbitrary text parses or is refused without throwing; what parses holds at most
// kMaxOfferedCandidates, each with exactly the port the JSON gave (no wrapped or truncated
// numbers), and the same offer written back as JSON parses to the same addresses.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "nat/path_offer.hpp"

namespace nat = pp::nat;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    auto offer = nat::parse_path_offer(text);
    if (!offer) return 0;
    if (offer->candidates.size() > nat::kMaxOfferedCandidates) std::abort();
    auto json = nlohmann::json::parse(text);  // it parsed above, so it is JSON
    const auto &given = json.at("candidates");
    nlohmann::json back{{"session", offer->session}, {"candidates", nlohmann::json::array()}};
    for (size_t i = 0; i < offer->candidates.size(); ++i) {
        const auto &port = given.at(i).at(1);
        if (!port.is_number_integer() || port.get<int64_t>() != offer->candidates[i].port()) std::abort();
        back["candidates"].push_back({offer->candidates[i].ip(), offer->candidates[i].port()});
    }
    if (!offer->relayed.empty()) back["relayed"] = {offer->relayed.ip(), offer->relayed.port()};
    auto again = nat::parse_path_offer(back.dump());
    if (!again || again->session != offer->session || again->candidates.size() != offer->candidates.size())
        std::abort();
    for (size_t i = 0; i < offer->candidates.size(); ++i)
        if (again->candidates[i].ip() != offer->candidates[i].ip() ||
            again->candidates[i].port() != offer->candidates[i].port())
            std::abort();
    return 0;
}
