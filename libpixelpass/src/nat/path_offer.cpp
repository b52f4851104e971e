#include "nat/path_offer.hpp"

#include <exception>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace pp::nat {

namespace {

// A JSON port is a whole number in 0..65535: nlohmann's get<uint16_t>() would wrap 70000 to 4464
// and -1 to 65535, and truncate 1.5 (fuzz-paths_offer finding).
uint16_t port_of(const nlohmann::json &j) {
    if (!j.is_number_integer()) throw std::invalid_argument("port is not a whole number");
    auto v = j.get<int64_t>();
    if (j.is_number_unsigned() ? j.get<uint64_t>() > 65535 : (v < 0 || v > 65535))
        throw std::out_of_range("port outside 0..65535");
    return static_cast<uint16_t>(v);
}

net::Address address_of(const nlohmann::json &pair) {
    if (!pair.is_array() || pair.size() != 2) throw std::invalid_argument("not an [ip, port] pair");
    return net::Address::parse(pair.at(0).get<std::string>(), port_of(pair.at(1)));
}

} // namespace

std::optional<PathOffer> parse_path_offer(std::string_view text) {
    auto offer = nlohmann::json::parse(text, nullptr, false);
    if (!offer.is_object()) return std::nullopt;
    PathOffer out;
    try {
        out.session = offer.at("session").get<std::string>();
        const auto &candidates = offer.at("candidates");
        if (!candidates.is_array()) return std::nullopt;
        for (const auto &c : candidates) {
            // The host keeps kMaxPeerCandidates of them; parsing more only costs loop time.
            if (out.candidates.size() == kMaxOfferedCandidates) break;
            out.candidates.push_back(address_of(c));
        }
        if (offer.contains("relayed") && offer["relayed"].is_array()) out.relayed = address_of(offer["relayed"]);
    } catch (const std::exception &) {
        return std::nullopt;
    }
    return out;
}

} // namespace pp::nat
