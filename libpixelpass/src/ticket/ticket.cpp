#include "ticket/ticket.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <gnutls/crypto.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "ticket/base32.hpp"
#include "ticket/crc32.hpp"

namespace pp::ticket {
namespace {

// Body layout (docs/TICKET.md has the byte-by-byte description).
constexpr uint8_t kFlagRelay = 0x01;
constexpr uint8_t kFlagExpiry = 0x02;
constexpr uint8_t kFlagSharedPort = 0x04;  // every candidate has the same port, written once
constexpr uint8_t kFlagOneViewer = 0x08;   // the host admits one viewer (it enforces that itself)
constexpr uint8_t kKnownFlags = kFlagRelay | kFlagExpiry | kFlagSharedPort | kFlagOneViewer;
constexpr uint8_t kFamilyIPv4 = 4;
constexpr uint8_t kFamilyIPv6 = 6;
constexpr uint8_t kHostName = 0;
constexpr size_t kFingerprintSize = PP_FINGERPRINT_SIZE;
constexpr size_t kChecksumSize = 4;
constexpr size_t kMaxExpiryBytes = 9;   // 9 * 7 = 63 bits: every non-negative int64
constexpr size_t kMaxVarintBytes = 10;  // beyond this a varint cannot end: the length is garbage
constexpr size_t kMaxDnsName = 253;

// ---- addresses ----------------------------------------------------------------------------

struct Address {
    uint8_t family = 0;  // kFamilyIPv4 or kFamilyIPv6
    std::array<uint8_t, 16> bytes{};
    size_t size() const { return family == kFamilyIPv4 ? 4 : 16; }
};

std::optional<Address> parse_numeric(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN || text.find('\0') != text.npos) return {};
    std::string s(text);  // inet_pton needs the terminating NUL
    Address a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.family = kFamilyIPv4;
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.family = kFamilyIPv6;
        return a;
    }
    return {};
}

std::string format_address(uint8_t family, std::span<const uint8_t> bytes) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == kFamilyIPv4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
    return buf;
}

// Letters, digits, '-', '_' and dots between non-empty labels of at most 63 characters; one
// trailing dot (a fully qualified name) is fine. '_' appears in real service names.
bool valid_dns_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxDnsName) return false;
    if (name.back() == '.') name.remove_suffix(1);
    size_t label = 0;
    for (char c : name) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63) return false;
    }
    return label > 0;
}

bool has_nul(std::string_view s) { return s.find('\0') != s.npos; }

const char *kind_name(pp_candidate_kind kind) {
    switch (kind) {
    case PP_CANDIDATE_LOCAL: return "local";
    case PP_CANDIDATE_REFLEXIVE: return "reflexive";
    case PP_CANDIDATE_MAPPED: return "mapped";
    case PP_CANDIDATE_RELAYED: return "relayed";
    case PP_CANDIDATE_FORCE_INT32_: break;  // not a kind
    }
    return "unknown";
}

bool valid_kind(int kind) { return kind >= PP_CANDIDATE_LOCAL && kind <= PP_CANDIDATE_RELAYED; }

// A kind from C may hold any int, but reading an enum outside its declared range is undefined in
// C++ (and UBSan says so): inspect its bytes instead of its value.
int kind_value(const pp_candidate_kind &kind) {
    static_assert(sizeof(pp_candidate_kind) == sizeof(int));
    int value;
    std::memcpy(&value, &kind, sizeof value);
    return value;
}

// ---- time -----------------------------------------------------------------------------------

// "2026-01-01T00:00:00Z" for any int64 (Howard Hinnant's days-to-civil, so no time_t limits).
std::string iso8601(int64_t unix_seconds) {
    int64_t days = unix_seconds / 86400;
    int64_t secs = unix_seconds % 86400;
    if (secs < 0) {
        secs += 86400;
        --days;
    }
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ",
                  static_cast<long long>(year), static_cast<long long>(month),
                  static_cast<long long>(day), static_cast<long long>(secs / 3600),
                  static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
    return buf;
}

std::string plural(uint64_t n, const char *unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
}

std::string ago(uint64_t seconds) {
    if (seconds < 120) return plural(seconds, "second") + " ago";
    if (seconds < 7200) return plural(seconds / 60, "minute") + " ago";
    if (seconds < 2 * 86400) return plural(seconds / 3600, "hour") + " ago";
    return plural(seconds / 86400, "day") + " ago";
}

// ---- hashes for JSON ------------------------------------------------------------------------

// First 8 hex digits of SHA-256: enough to tell two secrets apart, useless for guessing one.
std::string short_hash(std::span<const uint8_t> data) {
    static const uint8_t kEmpty = 0;
    std::array<uint8_t, 32> digest{};
    int rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, data.empty() ? &kEmpty : data.data(), data.size(),
                              digest.data());
    if (rc < 0) throw Error(PP_ERR_CRYPTO, std::string("SHA-256 failed: ") + gnutls_strerror(rc));
    return to_hex(std::span<const uint8_t>(digest).first(4));
}

std::span<const uint8_t> as_bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t *>(s.data()), s.size()};
}

// ---- relay validation -----------------------------------------------------------------------

// Checks a relay and returns it with a numeric host re-printed canonically.
Relay checked_relay(Relay relay) {
    if (relay.host.empty()) throw Error(PP_ERR_INVALID_ARGUMENT, "relay host must not be empty");
    if (relay.host.size() > kMaxRelayField)
        throw Error(PP_ERR_INVALID_ARGUMENT, "relay host is longer than 255 bytes");
    if (relay.port == 0) throw Error(PP_ERR_INVALID_ARGUMENT, "relay port must not be 0");
    if (relay.username.size() > kMaxRelayField)
        throw Error(PP_ERR_INVALID_ARGUMENT, "relay username is longer than 255 bytes");
    if (relay.credential.size() > kMaxRelayField)
        throw Error(PP_ERR_INVALID_ARGUMENT, "relay credential is longer than 255 bytes");
    if (has_nul(relay.username) || has_nul(relay.credential))
        throw Error(PP_ERR_INVALID_ARGUMENT, "relay username and credential must not contain NUL bytes");
    if (auto address = parse_numeric(relay.host)) {
        relay.host = format_address(address->family, {address->bytes.data(), address->size()});
    } else if (!valid_dns_name(relay.host)) {
        throw Error(PP_ERR_INVALID_ARGUMENT,
                    "relay host must be a DNS name or a numeric address (no scheme, port or brackets)");
    }
    return relay;
}

// ---- binary body: writing -------------------------------------------------------------------

class Writer {
public:
    void u8(uint8_t v) { out_.push_back(v); }
    void u16(uint16_t v) {
        out_.push_back(static_cast<uint8_t>(v >> 8));
        out_.push_back(static_cast<uint8_t>(v));
    }
    void u32(uint32_t v) {
        u16(static_cast<uint16_t>(v >> 16));
        u16(static_cast<uint16_t>(v));
    }
    void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
    void sized(std::string_view s) {  // length byte + bytes; callers checked the length
        u8(static_cast<uint8_t>(s.size()));
        bytes(as_bytes(s));
    }
    void varint(uint64_t v) {  // unsigned LEB128, minimal
        while (v >= 0x80) {
            u8(static_cast<uint8_t>(v | 0x80));
            v >>= 7;
        }
        u8(static_cast<uint8_t>(v));
    }
    std::vector<uint8_t> &data() { return out_; }

private:
    std::vector<uint8_t> out_;
};

std::vector<uint8_t> serialize(const Ticket &t) {
    if (t.secret.size() < PP_SECRET_MIN_SIZE || t.secret.size() > PP_SECRET_MAX_SIZE)
        throw Error(PP_ERR_INVALID_ARGUMENT, "ticket secret must be 16 to 32 bytes, not " +
                                                 std::to_string(t.secret.size()));
    if (t.candidates.size() > kMaxCandidates)
        throw Error(PP_ERR_INVALID_ARGUMENT, "a ticket holds at most 16 candidates, not " +
                                                 std::to_string(t.candidates.size()));
    if (t.expiry < 0) throw Error(PP_ERR_INVALID_ARGUMENT, "ticket expiry must not be negative");

    const auto &cands = t.candidates;
    bool shared = cands.size() >= 2 && std::all_of(cands.begin(), cands.end(), [&](const Candidate &c) {
                      return c.port == cands.front().port;
                  });
    uint8_t flags = (t.relay ? kFlagRelay : 0) | (t.expiry != 0 ? kFlagExpiry : 0) |
                    (shared ? kFlagSharedPort : 0) | (t.one_viewer ? kFlagOneViewer : 0);

    Writer w;
    w.u8(kVersion);
    w.u8(flags);
    w.bytes(t.fingerprint);
    w.u8(static_cast<uint8_t>(t.secret.size()));
    w.bytes(t.secret);
    w.u8(static_cast<uint8_t>(cands.size()));
    if (shared) w.u16(cands.front().port);
    for (size_t i = 0; i < cands.size(); ++i) {
        const Candidate &c = cands[i];
        std::string which = "candidate " + std::to_string(i + 1);
        const int kind = kind_value(c.kind);
        if (!valid_kind(kind)) throw Error(PP_ERR_INVALID_ARGUMENT, which + " has an unknown kind");
        if (c.port == 0) throw Error(PP_ERR_INVALID_ARGUMENT, which + " has port 0");
        auto address = parse_numeric(c.address);
        if (!address) throw Error(PP_ERR_INVALID_ARGUMENT, which + " is not a numeric IPv4 or IPv6 address");
        w.u8(static_cast<uint8_t>((kind << 4) | address->family));
        w.bytes({address->bytes.data(), address->size()});
        if (!shared) w.u16(c.port);
    }
    if (t.relay) {
        Relay r = checked_relay(*t.relay);
        if (auto address = parse_numeric(r.host)) {
            w.u8(address->family);
            w.bytes({address->bytes.data(), address->size()});
        } else {
            w.u8(kHostName);
            w.sized(r.host);
        }
        w.u16(r.port);
        w.sized(r.username);
        w.sized(r.credential);
    }
    if (t.expiry != 0) w.varint(static_cast<uint64_t>(t.expiry));
    return std::move(w.data());
}

// ---- binary body: reading -------------------------------------------------------------------

// Reads the body without judging its content. Past the end of the data it keeps going with the
// shortest valid value for each length field, so that for a truncated ticket `pos()` ends as a
// lower bound of the full length (exact when no length field was missing).
class Reader {
public:
    explicit Reader(std::span<const uint8_t> data) : data_(data) {}

    uint8_t u8(uint8_t assumed) {
        if (pos_ < data_.size()) return data_[pos_++];
        ++pos_;
        exact_ = false;
        return assumed;
    }
    std::span<const uint8_t> bytes(size_t n) {
        size_t start = std::min(pos_, data_.size());
        size_t available = std::min(n, data_.size() - start);
        pos_ += n;
        return data_.subspan(start, available);
    }
    uint16_t u16() {
        auto b = bytes(2);
        return b.size() == 2 ? static_cast<uint16_t>((b[0] << 8) | b[1]) : 0;
    }
    size_t pos() const { return pos_; }
    bool exact() const { return exact_; }

private:
    std::span<const uint8_t> data_;
    size_t pos_ = 0;
    bool exact_ = true;
};

struct RawCandidate {
    uint8_t tag = 0;  // kind << 4 | family
    std::span<const uint8_t> address;
    uint16_t port = 0;
};

struct RawRelay {
    uint8_t host_type = 0;
    std::span<const uint8_t> host, username, credential;
    uint16_t port = 0;
};

// The body as laid out, before its content is checked.
struct RawBody {
    uint8_t version = 0;
    uint8_t flags = 0;
    std::span<const uint8_t> fingerprint, secret;
    std::optional<uint16_t> shared_port;
    std::vector<RawCandidate> candidates;
    std::optional<RawRelay> relay;
    std::span<const uint8_t> expiry;  // the varint's bytes
    size_t end = 0;                   // body length in bytes (a lower bound when truncated)
    bool exact = true;                // false when a length field lay past the data
    std::string layout_error;         // a length field holds an impossible value
};

RawBody read_layout(std::span<const uint8_t> data) {
    Reader r(data);
    RawBody b;
    auto fail = [&](std::string why) {
        b.layout_error = std::move(why);
        return b;
    };
    b.version = r.u8(kVersion);
    b.flags = r.u8(0);
    b.fingerprint = r.bytes(kFingerprintSize);
    uint8_t secret_size = r.u8(PP_SECRET_MIN_SIZE);
    if (secret_size < PP_SECRET_MIN_SIZE || secret_size > PP_SECRET_MAX_SIZE)
        return fail("secret length " + std::to_string(secret_size) + " is outside 16..32");
    b.secret = r.bytes(secret_size);
    uint8_t count = r.u8(0);
    if (count > kMaxCandidates)
        return fail(std::to_string(count) + " candidates (at most 16)");
    if (b.flags & kFlagSharedPort) b.shared_port = r.u16();
    for (unsigned i = 0; i < count; ++i) {
        RawCandidate c;
        c.tag = r.u8(kFamilyIPv4);
        uint8_t family = c.tag & 0x0f;
        if (family != kFamilyIPv4 && family != kFamilyIPv6)
            return fail("candidate " + std::to_string(i + 1) + " has unknown address family " +
                        std::to_string(family));
        c.address = r.bytes(family == kFamilyIPv4 ? 4 : 16);
        c.port = b.shared_port ? *b.shared_port : r.u16();
        b.candidates.push_back(c);
    }
    if (b.flags & kFlagRelay) {
        RawRelay relay;
        relay.host_type = r.u8(kHostName);
        if (relay.host_type == kHostName)
            relay.host = r.bytes(r.u8(1));
        else if (relay.host_type == kFamilyIPv4 || relay.host_type == kFamilyIPv6)
            relay.host = r.bytes(relay.host_type == kFamilyIPv4 ? 4 : 16);
        else
            return fail("relay host type " + std::to_string(relay.host_type) + " is unknown");
        relay.port = r.u16();
        relay.username = r.bytes(r.u8(0));
        relay.credential = r.bytes(r.u8(0));
        b.relay = relay;
    }
    if (b.flags & kFlagExpiry) {
        size_t start = r.pos();
        for (size_t n = 1;; ++n) {
            if (!(r.u8(0) & 0x80)) break;
            if (n == kMaxVarintBytes) return fail("expiry field does not end");
        }
        if (start < data.size()) b.expiry = data.subspan(start, std::min(r.pos(), data.size()) - start);
    }
    b.end = r.pos();
    b.exact = r.exact();
    return b;
}

uint32_t read_be32(std::span<const uint8_t> b) {
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

Error malformed(const std::string &why) { return Error(PP_ERR_TICKET_MALFORMED, "malformed ticket: " + why); }

// The content checks, once the checksum has shown the bytes are what the encoder wrote. Every
// check that keeps the encoding canonical (one text per ticket) is here too.
Ticket build(const RawBody &b) {
    if (b.flags & ~kKnownFlags) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", b.flags & ~kKnownFlags);
        throw malformed(std::string("unknown flag bits ") + hex + " are set");
    }
    Ticket t;
    std::copy(b.fingerprint.begin(), b.fingerprint.end(), t.fingerprint.begin());
    t.secret.assign(b.secret.begin(), b.secret.end());
    t.one_viewer = (b.flags & kFlagOneViewer) != 0;

    if (b.shared_port) {
        if (b.candidates.size() < 2) throw malformed("a shared candidate port needs at least 2 candidates");
        if (*b.shared_port == 0) throw malformed("the shared candidate port is 0");
    }
    for (size_t i = 0; i < b.candidates.size(); ++i) {
        const RawCandidate &c = b.candidates[i];
        std::string which = "candidate " + std::to_string(i + 1);
        int kind = c.tag >> 4;
        if (!valid_kind(kind)) throw malformed(which + " has unknown kind " + std::to_string(kind));
        if (c.port == 0) throw malformed(which + " has port 0");
        t.candidates.push_back({static_cast<pp_candidate_kind>(kind),
                                format_address(c.tag & 0x0f, c.address), c.port});
    }
    if (!b.shared_port && t.candidates.size() >= 2 &&
        std::all_of(t.candidates.begin(), t.candidates.end(),
                    [&](const Candidate &c) { return c.port == t.candidates.front().port; }))
        throw malformed("candidates with one common port must use the shared-port form");

    if (b.relay) {
        const RawRelay &r = *b.relay;
        Relay relay;
        if (r.host_type == kHostName) {
            std::string_view name(reinterpret_cast<const char *>(r.host.data()), r.host.size());
            if (name.empty()) throw malformed("the relay host name is empty");
            if (parse_numeric(name)) throw malformed("the relay host is a numeric address written as a name");
            if (!valid_dns_name(name)) throw malformed("the relay host is not a valid DNS name");
            relay.host = name;
        } else {
            relay.host = format_address(r.host_type, r.host);
        }
        if (r.port == 0) throw malformed("the relay port is 0");
        relay.port = r.port;
        relay.username.assign(r.username.begin(), r.username.end());
        relay.credential.assign(r.credential.begin(), r.credential.end());
        if (has_nul(relay.username) || has_nul(relay.credential))
            throw malformed("the relay username or credential contains a NUL byte");
        t.relay = std::move(relay);
    }

    if (b.flags & kFlagExpiry) {
        const auto &v = b.expiry;
        if (v.size() > 1 && v.back() == 0) throw malformed("the expiry is not minimally encoded");
        if (v.size() > kMaxExpiryBytes) throw malformed("the expiry is out of range");
        uint64_t value = 0;
        for (size_t i = 0; i < v.size(); ++i) value |= uint64_t{v[i] & 0x7fu} << (7 * i);
        if (value == 0) throw malformed("the expiry flag is set but the expiry is 0");
        t.expiry = static_cast<int64_t>(value);
    }
    return t;
}

// ---- text -----------------------------------------------------------------------------------

bool ignorable(unsigned char c) {
    switch (c) {
    case ' ': case '\t': case '\r': case '\n': case '\v': case '\f':
    case '<': case '>': case '"': case '\'': case '`':
        return true;
    default:
        return false;
    }
}

// Multi-byte characters chat apps and word processors add around or inside pasted text:
// no-break and zero-width spaces, byte-order marks, typographic quotes and guillemets.
bool ignorable(std::string_view glyph) {
    static constexpr std::string_view kInvisibleOrQuote[] = {
        "\u00a0", "\u202f", "\u2007", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
        "\u2018", "\u2019", "\u201c", "\u201d", "\u00ab", "\u00bb", "\u2039", "\u203a"};
    for (std::string_view g : kInvisibleOrQuote)
        if (glyph == g) return true;
    return false;
}

// Bytes in the UTF-8 sequence starting at text[i]; 1 for ASCII and for invalid bytes.
size_t utf8_length(std::string_view text, size_t i) {
    unsigned char b = text[i];
    size_t n = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 1;
    if (n == 1 || i + n > text.size()) return 1;
    for (size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 1;
    return n;
}

// A character that survives cleaning, with where it was in the text as given.
struct Kept {
    std::string_view glyph;  // its bytes (one, unless a multi-byte UTF-8 character)
    size_t position;         // 1-based, counting characters (UTF-8 sequences), not bytes
};

std::vector<Kept> clean(std::string_view text) {
    std::vector<Kept> kept;
    size_t position = 0;
    for (size_t i = 0; i < text.size();) {
        ++position;
        size_t n = utf8_length(text, i);
        std::string_view glyph = text.substr(i, n);
        bool skip = n == 1 ? ignorable(static_cast<unsigned char>(text[i])) : ignorable(glyph);
        if (!skip) kept.push_back({glyph, position});
        i += n;
    }
    return kept;
}

// How an error message shows a character: 'x' when printable ASCII, U+XXXX otherwise, so an
// invisible character pasted by a chat app (U+200B) is named rather than printed.
std::string describe(std::string_view glyph) {
    auto b = static_cast<unsigned char>(glyph[0]);
    char buf[32];
    if (glyph.size() == 1 && b > 0x20 && b < 0x7f) return std::string("'") + glyph[0] + "'";
    if (glyph.size() == 1 && b >= 0x80) {
        std::snprintf(buf, sizeof buf, "byte 0x%02x", b);
        return buf;
    }
    uint32_t cp = glyph.size() == 1 ? b : glyph.size() == 2 ? b & 0x1f : glyph.size() == 3 ? b & 0x0f : b & 0x07;
    for (size_t k = 1; k < glyph.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(glyph[k]) & 0x3f);
    std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
    return buf;
}

std::string hint(std::string_view glyph) {
    if (glyph == "0") return " (did you mean the letter 'o'?)";
    if (glyph == "1") return " (did you mean the letter 'l' or 'i'?)";
    if (glyph == "8") return " (did you mean the letter 'b'?)";
    return "";
}

Error truncated(size_t missing, bool exact) {
    return Error(PP_ERR_TICKET_TRUNCATED, std::string("ticket truncated: ") + (exact ? "" : "at least ") +
                                              plural(missing, "character") + " missing");
}

Error checksum_mismatch() {
    return Error(PP_ERR_TICKET_CHECKSUM, "ticket checksum mismatch: a character was changed or mistyped");
}

} // namespace

Ticket make(std::span<const uint8_t> fingerprint, std::span<const uint8_t> secret) {
    if (fingerprint.size() != kFingerprintSize)
        throw Error(PP_ERR_INVALID_ARGUMENT, "fingerprint must be 32 bytes, not " + std::to_string(fingerprint.size()));
    if (secret.size() < PP_SECRET_MIN_SIZE || secret.size() > PP_SECRET_MAX_SIZE)
        throw Error(PP_ERR_INVALID_ARGUMENT, "secret must be 16 to 32 bytes, not " + std::to_string(secret.size()));
    Ticket t;
    std::copy(fingerprint.begin(), fingerprint.end(), t.fingerprint.begin());
    t.secret.assign(secret.begin(), secret.end());
    return t;
}

void set_relay(Ticket &ticket, Relay relay) { ticket.relay = checked_relay(std::move(relay)); }

void add_candidate(Ticket &ticket, pp_candidate_kind kind, std::string_view address, uint16_t port) {
    const int kind_number = kind_value(kind);
    if (!valid_kind(kind_number))
        throw Error(PP_ERR_INVALID_ARGUMENT, "unknown candidate kind " + std::to_string(kind_number));
    if (port == 0) throw Error(PP_ERR_INVALID_ARGUMENT, "candidate port must not be 0");
    if (ticket.candidates.size() >= kMaxCandidates)
        throw Error(PP_ERR_INVALID_ARGUMENT, "a ticket holds at most 16 candidates");
    auto parsed = parse_numeric(address);
    if (!parsed)
        throw Error(PP_ERR_INVALID_ARGUMENT, "candidate address must be a numeric IPv4 or IPv6 address");
    ticket.candidates.push_back({kind, format_address(parsed->family, {parsed->bytes.data(), parsed->size()}), port});
}

std::string encode(const Ticket &ticket) {
    std::vector<uint8_t> data = serialize(ticket);
    uint32_t crc = crc32(data);
    for (int shift = 24; shift >= 0; shift -= 8) data.push_back(static_cast<uint8_t>(crc >> shift));
    return std::string(kPrefix) + base32_encode(data);
}

namespace {

// A text that is not a ticket at all (a URL, a sentence) is told so, rather than being pointed at
// its first character outside the alphabet.
void require_prefix(const std::vector<Kept> &kept) {
    bool prefixed = kept.size() >= kPrefix.size();
    for (size_t i = 0; prefixed && i < kPrefix.size(); ++i)
        prefixed = kept[i].glyph.size() == 1 && (kept[i].glyph[0] | 0x20) == kPrefix[i];
    if (!prefixed) {
        if (kept.empty())
            throw Error(PP_ERR_TICKET_PREFIX, "ticket is empty: paste the whole line starting with \"pxp\"");
        std::string start;
        for (size_t i = 0; i < std::min(kept.size(), kPrefix.size()); ++i) {
            auto c = static_cast<unsigned char>(kept[i].glyph[0]);
            if (kept[i].glyph.size() != 1 || c <= 0x20 || c >= 0x7f) {
                start.clear();
                break;
            }
            start += static_cast<char>(c);
        }
        throw Error(PP_ERR_TICKET_PREFIX, "ticket must start with \"pxp\"" +
                                              (start.empty() ? "" : " (it starts with \"" + start + "\")"));
    }
}

// The body's characters as base32 digit values; the first one outside the alphabet is named with
// its position and, where it looks like a common slip, a hint.
std::vector<uint8_t> base32_values(std::span<const Kept> body) {
    std::vector<uint8_t> values;
    values.reserve(body.size());
    for (const Kept &k : body) {
        int v = k.glyph.size() == 1 ? base32_value(k.glyph[0]) : -1;
        if (v < 0)
            throw Error(PP_ERR_TICKET_CHARACTER, "invalid character " + describe(k.glyph) + " at position " +
                                                     std::to_string(k.position) + hint(k.glyph));
        values.push_back(static_cast<uint8_t>(v));
    }
    return values;
}

} // namespace

Ticket decode(std::string_view text, int64_t now) {
    std::vector<Kept> kept = clean(text);
    require_prefix(kept);
    std::span<const Kept> body(kept.begin() + kPrefix.size(), kept.end());
    std::vector<uint8_t> values = base32_values(body);
    const size_t chars = values.size();
    Base32Bits bits = base32_decode(values);
    std::span<const uint8_t> data(bits.bytes);

    // The envelope — base32 of (body || CRC-32 of body) — is the same for every version, so the
    // checksum over the whole text is checkable before the body's layout is known.
    bool envelope_ok = data.size() > kChecksumSize && base32_length(data.size()) == chars &&
                       bits.leftover_value == 0 &&
                       crc32(data.first(data.size() - kChecksumSize)) == read_be32(data.last(kChecksumSize));
    if (!data.empty() && data[0] != kVersion && envelope_ok) {
        if (data[0] > kVersion)
            throw Error(PP_ERR_TICKET_VERSION, "ticket version " + std::to_string(data[0]) +
                                                   " is newer than this pixelpass understands: upgrade pixelpass");
        throw Error(PP_ERR_TICKET_VERSION, "ticket version 0 is not a version any pixelpass writes");
    }

    // A damaged version byte is read as version 1: the checksum below then reports the damage.
    RawBody raw = read_layout(data);
    if (!raw.layout_error.empty()) {
        if (envelope_ok) throw malformed(raw.layout_error);
        throw checksum_mismatch();
    }
    const size_t total = raw.end + kChecksumSize;
    if (total > data.size()) {
        if (envelope_ok) throw malformed("the content ends before its last field");
        throw truncated(base32_length(total) - chars, raw.exact);
    }
    if (crc32(data.first(raw.end)) != read_be32(data.subspan(raw.end, kChecksumSize))) {
        if (envelope_ok) throw malformed("unexpected bytes after the last field");
        throw checksum_mismatch();
    }
    const size_t expected_chars = base32_length(total);
    if (chars > expected_chars)
        throw malformed("unexpected characters after the end of the ticket, from position " +
                        std::to_string(body[expected_chars].position));
    // The padding bits of the last character are outside the checksum; set ones mean that
    // character was mistyped (a typo, not a broken encoder), so it is reported like one.
    if (bits.leftover_value != 0)
        throw Error(PP_ERR_TICKET_CHECKSUM, "ticket checksum mismatch: the last character (position " +
                                                std::to_string(body.back().position) + ") was changed or mistyped");

    Ticket t = build(raw);
    if (t.expiry != 0 && now >= t.expiry)
        throw Error(PP_ERR_TICKET_EXPIRED, "ticket expired at " + iso8601(t.expiry) + " (" +
                                               ago(static_cast<uint64_t>(now) - static_cast<uint64_t>(t.expiry)) +
                                               "): ask the host for a new one");
    return t;
}

Ticket decode(std::string_view text) {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    return decode(text, static_cast<int64_t>(now.count()));
}

std::string access_token(std::span<const uint8_t> secret, int64_t expiry) {
    if (expiry == 0) return to_hex(secret);
    const std::string label = "pixelpass access v1 expiry=" + std::to_string(expiry);
    std::array<uint8_t, 32> mac{};
    int rc = gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret.data(), secret.size(), label.data(), label.size(), mac.data());
    if (rc < 0) throw Error(PP_ERR_CRYPTO, std::string("HMAC-SHA256 failed: ") + gnutls_strerror(rc));
    return to_hex(mac);
}

std::string to_json(const Ticket &ticket) {
    using json = nlohmann::ordered_json;
    const size_t length = encode(ticket).size();  // also validates the ticket

    json j;
    j["version"] = kVersion;
    j["fingerprint"] = to_hex(ticket.fingerprint);
    j["secret_hash"] = short_hash(ticket.secret);
    json candidates = json::array();
    for (const Candidate &c : ticket.candidates)
        candidates.push_back({{"kind", kind_name(c.kind)}, {"address", c.address}, {"port", c.port}});
    j["candidates"] = std::move(candidates);
    if (ticket.relay) {
        j["relay"] = {{"host", ticket.relay->host},
                      {"port", ticket.relay->port},
                      {"username", ticket.relay->username},
                      {"credential_hash", short_hash(as_bytes(ticket.relay->credential))}};
    } else {
        j["relay"] = nullptr;
    }
    if (ticket.expiry != 0) {
        j["expiry"] = ticket.expiry;
        j["expires_at"] = iso8601(ticket.expiry);
    } else {
        j["expiry"] = nullptr;
        j["expires_at"] = nullptr;
    }
    j["one_viewer"] = ticket.one_viewer;
    j["length"] = length;
    // A username is whatever bytes the relay operator chose: never let invalid UTF-8 throw.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace pp::ticket
