// ticket: the one credential a viewer holds — the host key fingerprint it pins, the access
// secret, candidate addresses, an optional TURN relay and an optional expiry — and its compact,
// paste-proof text form (docs/TICKET.md describes every byte).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pixelpass.h"

namespace pp::ticket {

inline constexpr std::string_view kPrefix = "pxp";  // text prefix, before the base32 body
inline constexpr uint8_t kVersion = 1;               // binary body version
inline constexpr size_t kMaxCandidates = 16;
inline constexpr size_t kMaxRelayField = 255;        // host, username and credential byte limit

struct Candidate {
    pp_candidate_kind kind = PP_CANDIDATE_LOCAL;
    std::string address;  // numeric IPv4 ("192.0.2.1") or IPv6 ("2001:db8::1"), canonical form
    uint16_t port = 0;
    bool operator==(const Candidate &) const = default;
};

struct Relay {
    std::string host;        // DNS name or numeric address
    uint16_t port = 3478;
    std::string username;    // short-lived TURN username (may be empty)
    std::string credential;  // short-lived TURN password (may be empty)
    bool operator==(const Relay &) const = default;
};

struct Ticket {
    std::array<uint8_t, PP_FINGERPRINT_SIZE> fingerprint{};
    std::vector<uint8_t> secret;  // PP_SECRET_MIN_SIZE..PP_SECRET_MAX_SIZE bytes
    std::vector<Candidate> candidates;
    std::optional<Relay> relay;
    int64_t expiry = 0;  // Unix seconds; 0 = never
    // The host admits one viewer with it. Tells the viewer beforehand; the host enforces it
    // whatever the ticket says (the CRC protects nothing).
    bool one_viewer = false;
    bool operator==(const Ticket &) const = default;
};

// Validated construction: the fingerprint is PP_FINGERPRINT_SIZE bytes, the secret between
// PP_SECRET_MIN_SIZE and PP_SECRET_MAX_SIZE. Throws pp::Error(PP_ERR_INVALID_ARGUMENT).
Ticket make(std::span<const uint8_t> fingerprint, std::span<const uint8_t> secret);

// Sets the relay after checking it: non-empty host, non-zero port, every field at most
// kMaxRelayField bytes. Throws pp::Error(PP_ERR_INVALID_ARGUMENT).
void set_relay(Ticket &ticket, Relay relay);

// Validates and canonicalises a candidate ("::ffff:1.2.3.4" stays IPv6; addresses are
// re-printed with inet_ntop). Throws pp::Error(PP_ERR_INVALID_ARGUMENT) for a non-numeric
// address, port 0, an unknown kind, or a full list.
void add_candidate(Ticket &ticket, pp_candidate_kind kind, std::string_view address, uint16_t port);

// Text form. Throws pp::Error(PP_ERR_INVALID_ARGUMENT) if the ticket breaks a limit.
std::string encode(const Ticket &ticket);

// Parses pasted text: ignores whitespace, '<', '>', '"', '\'' and '`' anywhere, and case.
// Throws pp::Error with PP_ERR_TICKET_{PREFIX,VERSION,TRUNCATED,CHARACTER,CHECKSUM,MALFORMED,
// EXPIRED} and a detail naming the position (1-based, in the text as given) or the number of
// missing characters. `now` is the Unix time expiry is checked against.
Ticket decode(std::string_view text, int64_t now);

// Same, checking expiry against the system clock.
Ticket decode(std::string_view text);

// What the viewer sends as "authorization: Bearer <token>" and the only value the host accepts.
// Without an expiry it is the secret in hex (tickets from before expiry binding keep working).
// With one it is hex(HMAC-SHA256(secret, "pixelpass access v1 expiry=<unix seconds>")): the host
// derives it from its own secret and expiry, so a ticket rebuilt without the expiry or with a
// later one (the CRC protects nothing) sends a token the host refuses.
std::string access_token(std::span<const uint8_t> secret, int64_t expiry);

// The QUIC application error code a host closes a viewer's connection with when the ticket
// expires (outside HTTP/3's registered range; our viewer reports PP_ERR_TICKET_EXPIRED).
inline constexpr uint64_t kExpiredCloseCode = 0x7078'7065;  // "pxpe"

// JSON for `pixelpass ticket inspect`: fingerprint as hex, candidates, relay (credential as a
// short hash), expiry, one_viewer, length; the secret only as a short hash. Never the secret itself.
std::string to_json(const Ticket &ticket);

} // namespace pp::ticket
