// rendezvous/seal: what a viewer leaves on the rendezvous for the host, and the keys that hide it.
//
// Everything is derived from the ticket's secret with HKDF-SHA256, each with its own label: the
// rendezvous key (where the value is stored; 20 bytes, OpenDHT's InfoHash size) and the sealing
// key (AES-256-GCM). Neither reveals the secret, and two tickets share nothing. The value is
// nonce || ciphertext || tag, with the plaintext padded to one fixed size, so an observer of the
// DHT learns neither the candidates nor how many there are, and only a ticket holder can write a
// value the host accepts. Pure functions: no I/O, any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.hpp"

namespace pp::rendezvous {

inline constexpr size_t kKeySize = 20;
using Key = std::array<uint8_t, kKeySize>;

// At most this many candidates travel in one offer (the host probes no more than that).
inline constexpr size_t kMaxCandidates = 16;
// An offer older (or further in the future) than this is refused: the value is short-lived.
inline constexpr int64_t kOfferLifetimeS = 120;
// Sealed values are always this long.
inline constexpr size_t kSealedSize = 12 + 1280 + 16;

// Where the host listens and the viewer puts: HKDF(secret, "pixelpass rendezvous key v1").
Key rendezvous_key(std::span<const uint8_t> ticket_secret);

// What the viewer tells the host: how to reach the socket its QUIC connection uses.
struct Offer {
    std::string session;                  // USERNAME of the host's probes: 16-64 lowercase hex digits
    std::string nat;                      // the viewer's NAT kind: "none", "cone", "symmetric", "unknown"
    std::vector<net::Address> candidates; // local, reflexive, mapped: at most kMaxCandidates
    int64_t issued = 0;                   // unix seconds
};

// Seals `offer` for the ticket holders. Throws pp::Error(PP_ERR_INVALID_ARGUMENT) when it does
// not fit (too many candidates, session too long).
std::vector<uint8_t> seal(const Offer &offer, std::span<const uint8_t> ticket_secret);

// The offer inside `value`, or nullopt for anything that is not a fresh offer sealed with this
// ticket (forged, garbage, another ticket's, expired): such values change nothing.
std::optional<Offer> open(std::span<const uint8_t> value, std::span<const uint8_t> ticket_secret, int64_t now);

// The plaintext inside a sealed value (JSON, space-padded), or nullopt for anything malformed.
// open() uses it after the AEAD check; exposed for the fuzzer, which cannot forge a tag.
std::optional<Offer> parse_offer(std::string_view plaintext);

} // namespace pp::rendezvous
