#include "rendezvous/seal.hpp"

#include <gnutls/crypto.h>

#include <algorithm>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/random.hpp"

namespace pp::rendezvous {

namespace {

constexpr size_t kNonceSize = 12, kTagSize = 16, kPlainSize = kSealedSize - kNonceSize - kTagSize;
constexpr size_t kMaxSession = 64;
constexpr std::string_view kSalt = "pixelpass rendezvous v1";

// HKDF-SHA256 (RFC 5869) of the secret with a label of its own per use.
std::vector<uint8_t> derive(std::span<const uint8_t> secret, std::string_view label, size_t size) {
    uint8_t prk[32];
    gnutls_datum_t ikm{const_cast<uint8_t *>(secret.data()), static_cast<unsigned>(secret.size())};
    gnutls_datum_t salt{reinterpret_cast<unsigned char *>(const_cast<char *>(kSalt.data())),
                        static_cast<unsigned>(kSalt.size())};
    if (gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm, &salt, prk) < 0)
        throw Error(PP_ERR_INTERNAL, "HKDF-Extract failed");
    gnutls_datum_t key{prk, sizeof prk};
    gnutls_datum_t info{reinterpret_cast<unsigned char *>(const_cast<char *>(label.data())),
                        static_cast<unsigned>(label.size())};
    std::vector<uint8_t> out(size);
    if (gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &key, &info, out.data(), out.size()) < 0)
        throw Error(PP_ERR_INTERNAL, "HKDF-Expand failed");
    return out;
}

struct AeadDeleter {
    void operator()(gnutls_aead_cipher_hd_t h) const { gnutls_aead_cipher_deinit(h); }
};
using Aead = std::unique_ptr<std::remove_pointer_t<gnutls_aead_cipher_hd_t>, AeadDeleter>;

Aead aead_for(std::span<const uint8_t> secret) {
    auto raw = derive(secret, "seal key", 32);
    gnutls_datum_t key{raw.data(), static_cast<unsigned>(raw.size())};
    gnutls_aead_cipher_hd_t h = nullptr;
    if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &key) < 0)
        throw Error(PP_ERR_INTERNAL, "AES-256-GCM is unavailable in GnuTLS");
    return Aead(h);
}

bool valid_session(std::string_view s) {
    return s.size() >= 16 && s.size() <= kMaxSession &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool valid_nat(std::string_view n) { return n == "none" || n == "cone" || n == "symmetric" || n == "unknown"; }

} // namespace

std::optional<Offer> parse_offer(std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    Offer o;
    try {  // every field's type is checked: a wrong one throws, and is refused here
        // Numbers are taken only when they fit: a cast of 1e300 or 2^64-1 would be undefined
        // (found by the rendezvous fuzzer). Times are Unix seconds before the year 36812.
        auto whole = [](const nlohmann::json &n, uint64_t max) -> std::optional<uint64_t> {
            if (!n.is_number_unsigned() || n.get<uint64_t>() > max) return std::nullopt;
            return n.get<uint64_t>();
        };
        if (whole(j.at("v"), 1) != 1) return std::nullopt;
        auto issued = whole(j.at("t"), uint64_t(1) << 40);
        if (!issued) return std::nullopt;
        o.issued = static_cast<int64_t>(*issued);
        o.session = j.at("s").get<std::string>();
        o.nat = j.at("n").get<std::string>();
        const auto &cands = j.at("c");
        if (!cands.is_array() || cands.size() > kMaxCandidates) return std::nullopt;
        for (const auto &c : cands) {
            auto port = whole(c.at(1), 65535);
            if (!port) return std::nullopt;
            o.candidates.push_back(net::Address::parse(c.at(0).get<std::string>(), static_cast<uint16_t>(*port)));
        }
    } catch (const std::exception &) {
        return std::nullopt;
    }
    if (!valid_session(o.session) || !valid_nat(o.nat)) return std::nullopt;
    return o;
}

Key rendezvous_key(std::span<const uint8_t> ticket_secret) {
    auto raw = derive(ticket_secret, "rendezvous key", kKeySize);
    Key k;
    std::copy(raw.begin(), raw.end(), k.begin());
    return k;
}

std::vector<uint8_t> seal(const Offer &offer, std::span<const uint8_t> ticket_secret) {
    if (offer.candidates.size() > kMaxCandidates)
        throw Error(PP_ERR_INVALID_ARGUMENT, "a rendezvous offer holds at most 16 candidates");
    if (!valid_session(offer.session) || !valid_nat(offer.nat))
        throw Error(PP_ERR_INVALID_ARGUMENT, "rendezvous offer: malformed session or NAT kind");
    nlohmann::json cands = nlohmann::json::array();
    for (const auto &a : offer.candidates) cands.push_back({a.ip(), a.port()});
    std::string plain =
        nlohmann::json{{"v", 1}, {"t", offer.issued}, {"s", offer.session}, {"n", offer.nat}, {"c", cands}}.dump();
    if (plain.size() > kPlainSize) throw Error(PP_ERR_INVALID_ARGUMENT, "rendezvous offer too large");
    plain.resize(kPlainSize, ' ');  // one size for every offer: the length tells nothing
    std::vector<uint8_t> out(kSealedSize);
    random_bytes(std::span<uint8_t>(out.data(), kNonceSize));
    Key where = rendezvous_key(ticket_secret);  // bound to its key: not movable to another
    size_t written = out.size() - kNonceSize;
    auto aead = aead_for(ticket_secret);
    if (gnutls_aead_cipher_encrypt(aead.get(), out.data(), kNonceSize, where.data(), where.size(), kTagSize,
                                   plain.data(), plain.size(), out.data() + kNonceSize, &written) < 0 ||
        written != kPlainSize + kTagSize)
        throw Error(PP_ERR_INTERNAL, "sealing the rendezvous offer failed");
    return out;
}

std::optional<Offer> open(std::span<const uint8_t> value, std::span<const uint8_t> ticket_secret, int64_t now) {
    if (value.size() != kSealedSize) return std::nullopt;
    Key where = rendezvous_key(ticket_secret);
    std::string plain(kPlainSize + kTagSize, '\0');
    size_t got = plain.size();
    auto aead = aead_for(ticket_secret);
    if (gnutls_aead_cipher_decrypt(aead.get(), value.data(), kNonceSize, where.data(), where.size(), kTagSize,
                                   value.data() + kNonceSize, value.size() - kNonceSize, plain.data(), &got) < 0)
        return std::nullopt;
    plain.resize(got);
    auto offer = parse_offer(plain);
    if (!offer) return std::nullopt;
    if (offer->issued < now - kOfferLifetimeS || offer->issued > now + kOfferLifetimeS) return std::nullopt;
    return offer;
}

} // namespace pp::rendezvous
