// Unit tests for the ticket module: the codec's building blocks (base32, CRC-32), round trips of
// every shape, the exact error for every kind of damage, paste tolerance, and randomised
// properties over thousands of tickets.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "ticket/base32.hpp"
#include "ticket/crc32.hpp"
#include "ticket/ticket.hpp"

using namespace pp::ticket;

namespace {

constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z: tests fix the clock

std::vector<uint8_t> iota_bytes(size_t n, uint8_t first) {
    std::vector<uint8_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(first + i);
    return out;
}

// Fingerprint 00 01 .. 1f, secret 40 41 .. 4f.
Ticket base_ticket() { return make(iota_bytes(32, 0), iota_bytes(16, 0x40)); }

struct Failure {
    pp_result code;
    std::string detail;
};

std::optional<Failure> decode_error(std::string_view text, int64_t now = kNow) {
    try {
        decode(text, now);
    } catch (const pp::Error &e) {
        return Failure{e.code(), e.what()};
    }
    return std::nullopt;
}

// Decoding must fail with exactly this code and detail.
void require_failure(std::string_view text, pp_result code, const std::string &detail) {
    auto f = decode_error(text);
    INFO("text: " << text);
    REQUIRE(f);
    CHECK(f->code == code);
    CHECK(f->detail == detail);
}

template <typename F>
Failure failure_of(F &&f) {
    try {
        f();
    } catch (const pp::Error &e) {
        return {e.code(), e.what()};
    }
    FAIL("expected a pp::Error");
    return {PP_OK, ""};
}

// The binary body of a valid ticket text (the checksum dropped), and the reverse: a correctly
// checksummed text for any body. Together they craft tickets that pass the checksum but break a
// content rule — exactly what a buggy or hostile encoder would produce.
std::vector<uint8_t> body_of(const std::string &text) {
    std::vector<uint8_t> values;
    for (char c : text.substr(3)) values.push_back(static_cast<uint8_t>(base32_value(c)));
    auto bytes = base32_decode(values).bytes;
    bytes.resize(bytes.size() - 4);
    return bytes;
}

std::string seal(std::vector<uint8_t> body) {
    uint32_t crc = crc32(body);
    for (int shift = 24; shift >= 0; shift -= 8) body.push_back(static_cast<uint8_t>(crc >> shift));
    return "pxp" + base32_encode(body);
}

std::string random_address(std::mt19937_64 &rng, bool v6) {
    uint8_t bytes[16];
    for (auto &b : bytes) b = static_cast<uint8_t>(rng());
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, buf, sizeof buf);
    return buf;
}

std::string random_dns_name(std::mt19937_64 &rng) {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz";
    std::string name;
    int labels = 1 + static_cast<int>(rng() % 4);
    for (int l = 0; l < labels; ++l) {
        if (l) name += '.';
        size_t len = 1 + rng() % 20;
        for (size_t i = 0; i < len; ++i) name += chars[rng() % 26];  // letters: never numeric
    }
    return name;
}

std::string random_field(std::mt19937_64 &rng, size_t max) {
    std::string s(rng() % (max + 1), ' ');
    for (auto &c : s) c = static_cast<char>(1 + rng() % 255);  // any byte but NUL
    return s;
}

Ticket random_ticket(std::mt19937_64 &rng) {
    std::vector<uint8_t> fp(32), secret(16 + rng() % 17);
    for (auto &b : fp) b = static_cast<uint8_t>(rng());
    for (auto &b : secret) b = static_cast<uint8_t>(rng());
    Ticket t = make(fp, secret);
    size_t count = rng() % 3 == 0 ? rng() % 17 : rng() % 7;
    bool one_port = rng() % 2;
    uint16_t port = static_cast<uint16_t>(1 + rng() % 65535);
    for (size_t i = 0; i < count; ++i) {
        auto kind = static_cast<pp_candidate_kind>(rng() % 4);
        add_candidate(t, kind, random_address(rng, rng() % 2),
                      one_port ? port : static_cast<uint16_t>(1 + rng() % 65535));
    }
    if (rng() % 2) {
        Relay r;
        switch (rng() % 3) {
        case 0: r.host = random_dns_name(rng); break;
        case 1: r.host = random_address(rng, false); break;
        default: r.host = random_address(rng, true); break;
        }
        r.port = static_cast<uint16_t>(1 + rng() % 65535);
        r.username = random_field(rng, rng() % 8 == 0 ? 255 : 40);
        r.credential = random_field(rng, rng() % 8 == 0 ? 255 : 40);
        set_relay(t, r);
    }
    if (rng() % 2) {
        int bits = 1 + static_cast<int>(rng() % 63);
        t.expiry = static_cast<int64_t>(rng() >> (64 - bits));
        if (t.expiry == 0) t.expiry = 1;
    }
    return t;
}

std::string with_spacing(const std::string &text, size_t every, const std::string &separator) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (i && i % every == 0) out += separator;
        out += text[i];
    }
    return out;
}

} // namespace

// ---- building blocks --------------------------------------------------------------------------

TEST_CASE("crc32 is the zlib/IEEE CRC-32", "[ticket]") {
    std::string check = "123456789";
    CHECK(crc32({reinterpret_cast<const uint8_t *>(check.data()), check.size()}) == 0xCBF43926u);
    CHECK(crc32({}) == 0u);
}

TEST_CASE("base32 matches the RFC 4648 test vectors without padding", "[ticket]") {
    const std::pair<std::string, std::string> vectors[] = {
        {"", ""}, {"f", "my"}, {"fo", "mzxq"}, {"foo", "mzxw6"}, {"foob", "mzxw6yq"},
        {"fooba", "mzxw6ytb"}, {"foobar", "mzxw6ytboi"}};
    for (const auto &[plain, encoded] : vectors) {
        std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t *>(plain.data()), plain.size());
        CHECK(base32_encode(bytes) == encoded);
        CHECK(base32_length(plain.size()) == encoded.size());
        std::vector<uint8_t> values;
        for (char c : encoded) values.push_back(static_cast<uint8_t>(base32_value(c)));
        auto decoded = base32_decode(values);
        CHECK(std::string(decoded.bytes.begin(), decoded.bytes.end()) == plain);
        CHECK(decoded.leftover_value == 0u);
        CHECK(decoded.leftover_bits < 5u);
    }
    CHECK(base32_value('A') == 0);
    CHECK(base32_value('z') == 25);
    CHECK(base32_value('7') == 31);
    for (char c : std::string("0189=!@ ")) CHECK(base32_value(c) == -1);
}

// ---- construction -----------------------------------------------------------------------------

TEST_CASE("make checks fingerprint and secret sizes", "[ticket]") {
    CHECK(failure_of([] { make(iota_bytes(31, 0), iota_bytes(16, 0)); }).code == PP_ERR_INVALID_ARGUMENT);
    CHECK(failure_of([] { make(iota_bytes(33, 0), iota_bytes(16, 0)); }).code == PP_ERR_INVALID_ARGUMENT);
    CHECK(failure_of([] { make(iota_bytes(32, 0), iota_bytes(15, 0)); }).detail ==
          "secret must be 16 to 32 bytes, not 15");
    CHECK(failure_of([] { make(iota_bytes(32, 0), iota_bytes(33, 0)); }).code == PP_ERR_INVALID_ARGUMENT);
    Ticket t = make(iota_bytes(32, 0), iota_bytes(32, 0));
    CHECK(t.secret.size() == 32);
    CHECK(t.fingerprint[31] == 31);
    CHECK(t.candidates.empty());
    CHECK(!t.relay);
    CHECK(t.expiry == 0);
}

TEST_CASE("add_candidate validates and canonicalises", "[ticket]") {
    Ticket t = base_ticket();
    add_candidate(t, PP_CANDIDATE_LOCAL, "2001:DB8:0:0:0::0001", 1);
    add_candidate(t, PP_CANDIDATE_MAPPED, "::ffff:1.2.3.4", 2);
    add_candidate(t, PP_CANDIDATE_RELAYED, "198.51.100.7", 65535);
    CHECK(t.candidates[0].address == "2001:db8::1");
    CHECK(t.candidates[1].address == "::ffff:1.2.3.4");  // stays IPv6
    CHECK(t.candidates[2] == Candidate{PP_CANDIDATE_RELAYED, "198.51.100.7", 65535});

    for (const char *bad : {"", "localhost", "1.2.3", "01.2.3.4", "1.2.3.4:80", "[::1]", "fe80::1%eth0", " 1.2.3.4"}) {
        INFO(bad);
        CHECK(failure_of([&] { add_candidate(t, PP_CANDIDATE_LOCAL, bad, 1); }).detail ==
              "candidate address must be a numeric IPv4 or IPv6 address");
    }
    CHECK(failure_of([&] { add_candidate(t, PP_CANDIDATE_LOCAL, "1.2.3.4", 0); }).detail ==
          "candidate port must not be 0");
    // (Out-of-range kinds come only from C callers: creating one in C++ is itself undefined, so
    // add_candidate's check is exercised through encode() below and the C API tests.)
    while (t.candidates.size() < kMaxCandidates) add_candidate(t, PP_CANDIDATE_LOCAL, "10.0.0.1", 9);
    CHECK(failure_of([&] { add_candidate(t, PP_CANDIDATE_LOCAL, "10.0.0.1", 9); }).detail ==
          "a ticket holds at most 16 candidates");
    CHECK(t.candidates.size() == 16);
}

TEST_CASE("set_relay validates and canonicalises", "[ticket]") {
    Ticket t = base_ticket();
    set_relay(t, {"::0001", 3478, "u", "p"});
    CHECK(t.relay->host == "::1");
    set_relay(t, {"Turn.Example.ORG.", 5349, "", ""});
    CHECK(t.relay->host == "Turn.Example.ORG.");
    std::string max(255, 'x');
    set_relay(t, {"a.b", 1, max, max});
    CHECK(t.relay->username.size() == 255);

    auto detail = [&](Relay r) { return failure_of([&] { set_relay(t, r); }).detail; };
    CHECK(detail({"", 3478, "", ""}) == "relay host must not be empty");
    CHECK(detail({"turn.example.org", 0, "", ""}) == "relay port must not be 0");
    CHECK(detail({std::string(256, 'a'), 1, "", ""}) == "relay host is longer than 255 bytes");
    CHECK(detail({"h", 1, std::string(256, 'u'), ""}) == "relay username is longer than 255 bytes");
    CHECK(detail({"h", 1, "", std::string(256, 'c')}) == "relay credential is longer than 255 bytes");
    CHECK(detail({"h", 1, std::string("a\0b", 3), ""}) == "relay username and credential must not contain NUL bytes");
    for (const char *bad : {"turn:example.org", "example.org:3478", "[::1]", "exa mple.org", "a..b", ".a", "\xc3\xa9.org",
                            "a/b", "a.b..", "1.2.3.4:5"}) {
        INFO(bad);
        CHECK(detail({bad, 1, "", ""}) ==
              "relay host must be a DNS name or a numeric address (no scheme, port or brackets)");
    }
    CHECK(t.relay->host == "a.b");  // failed calls leave the relay as it was
}

// ---- round trips ------------------------------------------------------------------------------

TEST_CASE("round trips keep every field", "[ticket]") {
    Ticket t = base_ticket();
    SECTION("no candidates") {}
    SECTION("IPv4") { add_candidate(t, PP_CANDIDATE_LOCAL, "192.168.1.23", 47000); }
    SECTION("IPv6") { add_candidate(t, PP_CANDIDATE_REFLEXIVE, "2a02:8071:5e3:1d00::3456", 47000); }
    SECTION("IPv4-mapped IPv6 stays IPv6") { add_candidate(t, PP_CANDIDATE_LOCAL, "::ffff:10.0.0.1", 1); }
    SECTION("16 candidates, mixed ports") {
        for (int i = 0; i < 16; ++i)
            add_candidate(t, static_cast<pp_candidate_kind>(i % 4), i % 2 ? "10.0.0." + std::to_string(i) : "fd00::" + std::to_string(i),
                          static_cast<uint16_t>(1000 + i));
    }
    SECTION("16 candidates, one port") {
        for (int i = 0; i < 16; ++i)
            add_candidate(t, PP_CANDIDATE_LOCAL, "fd00::" + std::to_string(i + 1), 65535);
    }
    SECTION("relay with a DNS name") { set_relay(t, {"turn.example.org", 3478, "1767225600:pixelpass", "nZ3dVp25BhbbepDvxqpLxeGjR/E="}); }
    SECTION("relay with an IPv4 host") { set_relay(t, {"203.0.113.9", 443, "user", "pass"}); }
    SECTION("relay with an IPv6 host and empty credentials") { set_relay(t, {"2001:db8::9", 3478, "", ""}); }
    SECTION("expiry") { t.expiry = kNow + 3600; }
    SECTION("largest expiry") { t.expiry = std::numeric_limits<int64_t>::max(); }
    SECTION("everything") {
        add_candidate(t, PP_CANDIDATE_LOCAL, "192.168.1.23", 47000);
        add_candidate(t, PP_CANDIDATE_MAPPED, "2001:db8::1", 47001);
        set_relay(t, {"turn.example.org", 3478, "1767225600:pixelpass", "nZ3dVp25BhbbepDvxqpLxeGjR/E="});
        t.expiry = kNow + 1;
    }

    std::string text = encode(t);
    INFO(text);
    CHECK(text.rfind("pxp", 0) == 0);
    CHECK(std::all_of(text.begin(), text.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); }));
    CHECK(encode(t) == text);  // deterministic
    CHECK(decode(text, kNow) == t);
}

TEST_CASE("the shared-port form is used exactly when it applies", "[ticket]") {
    Ticket one_port = base_ticket(), two_ports = base_ticket();
    for (int i = 0; i < 3; ++i) {
        add_candidate(one_port, PP_CANDIDATE_LOCAL, "10.0.0." + std::to_string(i + 1), 5000);
        add_candidate(two_ports, PP_CANDIDATE_LOCAL, "10.0.0." + std::to_string(i + 1), i == 2 ? 5001 : 5000);
    }
    // 52 fixed bytes; per IPv4 candidate a tag, 4 address bytes and (unless shared) 2 port bytes.
    CHECK(encode(one_port).size() == 3 + base32_length(52 + 2 + 3 * 5 + 4));
    CHECK(encode(two_ports).size() == 3 + base32_length(52 + 3 * 7 + 4));
    CHECK(decode(encode(one_port), kNow) == one_port);
    CHECK(decode(encode(two_ports), kNow) == two_ports);
}

// ---- errors -----------------------------------------------------------------------------------

TEST_CASE("prefix errors", "[ticket]") {
    require_failure("", PP_ERR_TICKET_PREFIX, "ticket is empty: paste the whole line starting with \"pxp\"");
    require_failure(" \n\t<>\"'` ", PP_ERR_TICKET_PREFIX, "ticket is empty: paste the whole line starting with \"pxp\"");
    require_failure("https://example.org/", PP_ERR_TICKET_PREFIX, "ticket must start with \"pxp\" (it starts with \"htt\")");
    require_failure("px", PP_ERR_TICKET_PREFIX, "ticket must start with \"pxp\" (it starts with \"px\")");
    require_failure("p\xc3\xa9xp", PP_ERR_TICKET_PREFIX, "ticket must start with \"pxp\"");
    std::string text = encode(base_ticket());
    require_failure("pxq" + text.substr(3), PP_ERR_TICKET_PREFIX, "ticket must start with \"pxp\" (it starts with \"pxq\")");
    require_failure(text.substr(1), PP_ERR_TICKET_PREFIX, "ticket must start with \"pxp\" (it starts with \"xpa\")");
}

TEST_CASE("character errors name the character and its position in the text as given", "[ticket]") {
    std::string text = encode(base_ticket());
    std::string bad = text;
    bad[41] = '!';
    require_failure(bad, PP_ERR_TICKET_CHARACTER, "invalid character '!' at position 42");
    // Ignored characters before it still count: the position is in the original text.
    require_failure("  <" + bad, PP_ERR_TICKET_CHARACTER, "invalid character '!' at position 45");
    bad[41] = '0';
    require_failure(bad, PP_ERR_TICKET_CHARACTER, "invalid character '0' at position 42 (did you mean the letter 'o'?)");
    bad[41] = '1';
    require_failure(bad, PP_ERR_TICKET_CHARACTER, "invalid character '1' at position 42 (did you mean the letter 'l' or 'i'?)");
    bad[41] = '8';
    require_failure(bad, PP_ERR_TICKET_CHARACTER, "invalid character '8' at position 42 (did you mean the letter 'b'?)");
    // Positions count characters, not UTF-8 bytes; invisible characters are named by code point.
    std::string zwsp = "\xe2\x80\x8b";
    require_failure("\xc3\xa9" + text.substr(0, 10) + zwsp + text.substr(10), PP_ERR_TICKET_PREFIX,
                    "ticket must start with \"pxp\"");
    require_failure(text.substr(0, 10) + "\xc3\xa9" + zwsp + text.substr(10), PP_ERR_TICKET_CHARACTER,
                    "invalid character U+00E9 at position 11");
    std::string vs16 = "\xef\xb8\x8f";  // an emoji variation selector: not something to ignore
    require_failure(text.substr(0, 10) + vs16 + text.substr(10), PP_ERR_TICKET_CHARACTER,
                    "invalid character U+FE0F at position 11");
    require_failure(text.substr(0, 10) + "\xff" + text.substr(10), PP_ERR_TICKET_CHARACTER,
                    "invalid character byte 0xff at position 11");
    require_failure(text.substr(0, 10) + std::string(1, '\0') + text.substr(10), PP_ERR_TICKET_CHARACTER,
                    "invalid character U+0000 at position 11");
    require_failure(text.substr(0, 10) + "\x1b" + text.substr(10), PP_ERR_TICKET_CHARACTER,
                    "invalid character U+001B at position 11");
    // A character error wins over the truncation it may hide.
    require_failure(text.substr(0, 20) + "=", PP_ERR_TICKET_CHARACTER, "invalid character '=' at position 21");
}

TEST_CASE("truncation says how many characters are missing", "[ticket]") {
    Ticket t = base_ticket();
    add_candidate(t, PP_CANDIDATE_LOCAL, "192.168.1.23", 47000);
    add_candidate(t, PP_CANDIDATE_LOCAL, "2001:db8::1", 47001);
    set_relay(t, {"turn.example.org", 3478, "1767225600:pixelpass", "nZ3dVp25BhbbepDvxqpLxeGjR/E="});
    t.expiry = kNow + 600;
    std::string text = encode(t);

    require_failure(text.substr(0, text.size() - 1), PP_ERR_TICKET_TRUNCATED, "ticket truncated: 1 character missing");
    require_failure(text.substr(0, text.size() - 7), PP_ERR_TICKET_TRUNCATED, "ticket truncated: 7 characters missing");
    // Cut inside the relay credential (bytes 120..147 of the body): its length byte is present,
    // but the expiry varint after it is not, so only a 1-byte expiry can be assumed.
    REQUIRE(text.size() == 3 + base32_length(153 + 4));
    require_failure(text.substr(0, 200), PP_ERR_TICKET_TRUNCATED,
                    "ticket truncated: at least " + std::to_string(base32_length(149 + 4) - 197) +
                        " characters missing");
    // Without an expiry every length field before the cut is known: the count is exact.
    Ticket no_expiry = t;
    no_expiry.expiry = 0;
    require_failure(encode(no_expiry).substr(0, 200), PP_ERR_TICKET_TRUNCATED,
                    "ticket truncated: " + std::to_string(base32_length(148 + 4) - 197) + " characters missing");
    // Nothing after the prefix: only the shortest possible ticket's length is known.
    require_failure("pxp", PP_ERR_TICKET_TRUNCATED,
                    "ticket truncated: at least " + std::to_string(base32_length(1 + 1 + 32 + 1 + 16 + 1 + 4)) +
                        " characters missing");

    // Every cut of the ticket reports truncation, with a count that is never too high and is
    // exact whenever the detail does not say "at least".
    for (size_t len = 3; len < text.size(); ++len) {
        auto f = decode_error(text.substr(0, len));
        INFO("kept " << len << " of " << text.size());
        REQUIRE(f);
        REQUIRE(f->code == PP_ERR_TICKET_TRUNCATED);
        size_t missing = text.size() - len;
        const std::string exact = "ticket truncated: " + std::to_string(missing) + " character" + (missing == 1 ? "" : "s") + " missing";
        if (f->detail.find("at least") == std::string::npos) {
            CHECK(f->detail == exact);
        } else {
            unsigned long n = std::stoul(f->detail.substr(std::string("ticket truncated: at least ").size()));
            CHECK(n >= 1);
            CHECK(n <= missing);
        }
    }
}

TEST_CASE("a changed character is a checksum mismatch", "[ticket]") {
    std::string text = encode(base_ticket());
    std::string bad = text;
    bad[20] = bad[20] == 'q' ? 'r' : 'q';  // inside the fingerprint
    require_failure(bad, PP_ERR_TICKET_CHECKSUM, "ticket checksum mismatch: a character was changed or mistyped");
    bad = text;
    bad[bad.size() - 2] = bad[bad.size() - 2] == 'a' ? 'b' : 'a';  // inside the checksum
    require_failure(bad, PP_ERR_TICKET_CHECKSUM, "ticket checksum mismatch: a character was changed or mistyped");
    // Two tickets pasted together: the first one's checksum is fine, the rest is extra.
    std::string twice = text + text;
    require_failure(twice, PP_ERR_TICKET_MALFORMED,
                    "malformed ticket: unexpected characters after the end of the ticket, from position " +
                        std::to_string(text.size() + 1));
    // An inserted character shifts everything after it.
    require_failure(text.substr(0, 30) + "a" + text.substr(30), PP_ERR_TICKET_CHECKSUM,
                    "ticket checksum mismatch: a character was changed or mistyped");
}

TEST_CASE("version errors", "[ticket]") {
    auto body = body_of(encode(base_ticket()));
    body[0] = 7;
    require_failure(seal(body), PP_ERR_TICKET_VERSION,
                    "ticket version 7 is newer than this pixelpass understands: upgrade pixelpass");
    // A future version may lay its body out differently: only the envelope must hold.
    require_failure(seal({2, 0xff, 0xff}), PP_ERR_TICKET_VERSION,
                    "ticket version 2 is newer than this pixelpass understands: upgrade pixelpass");
    body[0] = 0;
    require_failure(seal(body), PP_ERR_TICKET_VERSION, "ticket version 0 is not a version any pixelpass writes");
    // A mistyped first character changes the version byte but breaks the checksum: report that.
    std::string text = encode(base_ticket());
    REQUIRE(text[3] == 'a');
    text[3] = 'c';
    require_failure(text, PP_ERR_TICKET_CHECKSUM, "ticket checksum mismatch: a character was changed or mistyped");
}

TEST_CASE("content errors behind a valid checksum", "[ticket]") {
    Ticket t = base_ticket();
    add_candidate(t, PP_CANDIDATE_LOCAL, "192.0.2.1", 4000);
    add_candidate(t, PP_CANDIDATE_LOCAL, "192.0.2.2", 4001);
    const auto body = body_of(encode(t));
    // Layout: 0 version, 1 flags, 2..33 fingerprint, 34 secret length, 35..50 secret, 51 count,
    // 52 tag, 53..56 address, 57..58 port, 59 tag, 60..63 address, 64..65 port.
    REQUIRE(body.size() == 66);
    REQUIRE(body[52] == 0x04);
    const std::string m = "malformed ticket: ";
    auto mutated = [&](auto change) {
        auto b = body;
        change(b);
        return seal(b);
    };
    require_failure(mutated([](auto &b) { b[52] = 0x44; }), PP_ERR_TICKET_MALFORMED, m + "candidate 1 has unknown kind 4");
    require_failure(mutated([](auto &b) { b[59] = 0x05; }), PP_ERR_TICKET_MALFORMED, m + "candidate 2 has unknown address family 5");
    require_failure(mutated([](auto &b) { b[57] = 0, b[58] = 0; }), PP_ERR_TICKET_MALFORMED, m + "candidate 1 has port 0");
    require_failure(mutated([](auto &b) { b.push_back(0); }), PP_ERR_TICKET_MALFORMED, m + "unexpected bytes after the last field");
    require_failure(mutated([](auto &b) { b.pop_back(); }), PP_ERR_TICKET_MALFORMED, m + "the content ends before its last field");
    require_failure(mutated([](auto &b) { b[34] = 15; }), PP_ERR_TICKET_MALFORMED, m + "secret length 15 is outside 16..32");
    require_failure(mutated([](auto &b) { b[34] = 40; }), PP_ERR_TICKET_MALFORMED, m + "secret length 40 is outside 16..32");
    require_failure(mutated([](auto &b) { b[51] = 17; }), PP_ERR_TICKET_MALFORMED, m + "17 candidates (at most 16)");
    require_failure(mutated([](auto &b) { b[1] = 0x80; }), PP_ERR_TICKET_MALFORMED, m + "unknown flag bits 0x80 are set");
    // The same port twice without the shared-port form would give a second text for one ticket.
    require_failure(mutated([](auto &b) { b[58] = b[65]; }), PP_ERR_TICKET_MALFORMED,
                    m + "candidates with one common port must use the shared-port form");
    // Shared-port form with a single candidate.
    {
        std::vector<uint8_t> b(body.begin(), body.begin() + 51);
        b.insert(b.end(), {1, 0x12, 0x34, 0x04, 192, 0, 2, 1});
        b[1] = 0x04;
        require_failure(seal(b), PP_ERR_TICKET_MALFORMED, m + "a shared candidate port needs at least 2 candidates");
        b[1] = 0;
        b.erase(b.begin() + 52, b.begin() + 54);
        b.insert(b.end(), {0x12, 0x34});
        CHECK(decode(seal(b), kNow).candidates.at(0) == Candidate{PP_CANDIDATE_LOCAL, "192.0.2.1", 0x1234});
    }
    // Non-zero padding bits (outside the checksum): 66 + 4 bytes fill 112 characters exactly, so
    // build a 52-byte body (90 characters, 2 padding bits) and set a padding bit.
    {
        std::vector<uint8_t> b(body.begin(), body.begin() + 51);
        b.push_back(0);  // no candidates: 52 + 4 = 56 bytes = 90 characters, 2 padding bits
        std::string text = seal(b);
        REQUIRE(text.size() == 3 + 90);
        CHECK(decode(text, kNow).candidates.empty());
        text.back() = kBase32Alphabet[base32_value(text.back()) | 1];
        require_failure(text, PP_ERR_TICKET_CHECKSUM,
                        "ticket checksum mismatch: the last character (position 93) was changed or mistyped");
    }
}

TEST_CASE("relay and expiry content errors", "[ticket]") {
    const std::vector<uint8_t> head = body_of(encode(base_ticket()));  // 52 bytes, no candidates
    const std::string m = "malformed ticket: ";
    auto with = [&](uint8_t flags, std::vector<uint8_t> tail) {
        auto b = head;
        b[1] = flags;
        b.insert(b.end(), tail.begin(), tail.end());
        return seal(b);
    };
    // A valid relay by name, then broken variants.
    CHECK(decode(with(1, {0, 3, 'a', '.', 'b', 0x0d, 0x96, 1, 'u', 1, 'p'}), kNow).relay ==
          Relay{"a.b", 3478, "u", "p"});
    require_failure(with(1, {0, 0, 0x0d, 0x96, 0, 0}), PP_ERR_TICKET_MALFORMED, m + "the relay host name is empty");
    require_failure(with(1, {0, 7, '1', '.', '2', '.', '3', '.', '4', 0x0d, 0x96, 0, 0}), PP_ERR_TICKET_MALFORMED,
                    m + "the relay host is a numeric address written as a name");
    require_failure(with(1, {0, 3, 'a', '/', 'b', 0x0d, 0x96, 0, 0}), PP_ERR_TICKET_MALFORMED,
                    m + "the relay host is not a valid DNS name");
    require_failure(with(1, {4, 1, 2, 3, 4, 0, 0, 0, 0}), PP_ERR_TICKET_MALFORMED, m + "the relay port is 0");
    require_failure(with(1, {5, 1, 2, 3, 4, 0, 1, 0, 0}), PP_ERR_TICKET_MALFORMED, m + "relay host type 5 is unknown");
    require_failure(with(1, {4, 1, 2, 3, 4, 0, 1, 1, 0, 0}), PP_ERR_TICKET_MALFORMED,
                    m + "the relay username or credential contains a NUL byte");
    CHECK(decode(with(1, {6, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1, 0xbb, 0, 0}), kNow).relay ==
          Relay{"2001:db8::9", 443, "", ""});

    CHECK(decode(with(2, {0x7f}), 0).expiry == 127);
    CHECK(decode(with(2, {0x80, 0x01}), 0).expiry == 128);
    require_failure(with(2, {0}), PP_ERR_TICKET_MALFORMED, m + "the expiry flag is set but the expiry is 0");
    require_failure(with(2, {0xff, 0x00}), PP_ERR_TICKET_MALFORMED, m + "the expiry is not minimally encoded");
    require_failure(with(2, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), PP_ERR_TICKET_MALFORMED,
                    m + "the expiry is out of range");
    require_failure(with(2, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), PP_ERR_TICKET_MALFORMED,
                    m + "expiry field does not end");
    CHECK(decode(with(2, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}), 0).expiry ==
          std::numeric_limits<int64_t>::max());
}

TEST_CASE("expired tickets say when they expired", "[ticket]") {
    Ticket t = base_ticket();
    t.expiry = kNow - 3 * 3600 - 5;
    std::string text = encode(t);
    require_failure(text, PP_ERR_TICKET_EXPIRED,
                    "ticket expired at 2025-12-31T20:59:55Z (3 hours ago): ask the host for a new one");
    CHECK(decode(text, t.expiry - 1) == t);
    auto f = decode_error(text, t.expiry);  // the expiry second itself is already too late
    REQUIRE(f);
    CHECK(f->detail == "ticket expired at 2025-12-31T20:59:55Z (0 seconds ago): ask the host for a new one");
    t.expiry = 1;
    CHECK(decode_error(encode(t), kNow)->detail ==
          "ticket expired at 1970-01-01T00:00:01Z (20453 days ago): ask the host for a new one");

    // The clock-reading overload uses the real time.
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    t.expiry = now + 3600;
    CHECK(decode(encode(t)) == t);
    t.expiry = now - 90;
    CHECK(failure_of([&] { decode(encode(t)); }).code == PP_ERR_TICKET_EXPIRED);
}

TEST_CASE("damage is reported in the documented order", "[ticket]") {
    Ticket t = base_ticket();
    add_candidate(t, PP_CANDIDATE_LOCAL, "192.0.2.1", 4000);
    t.expiry = kNow - 1;  // expired as well
    std::string text = encode(t);
    std::string changed = text;
    changed[30] = changed[30] == 'a' ? 'b' : 'a';
    std::string cut = text.substr(0, text.size() - 5);
    // A text that is not a ticket at all is told so before its first odd character is named.
    CHECK(decode_error("hello!")->code == PP_ERR_TICKET_PREFIX);
    CHECK(decode_error(cut + "!")->code == PP_ERR_TICKET_CHARACTER);    // character beats truncation
    CHECK(decode_error(cut)->code == PP_ERR_TICKET_TRUNCATED);          // truncation beats checksum
    CHECK(decode_error(changed)->code == PP_ERR_TICKET_CHECKSUM);       // checksum beats expiry
    CHECK(decode_error(text)->code == PP_ERR_TICKET_EXPIRED);
}

// ---- paste tolerance --------------------------------------------------------------------------

TEST_CASE("pasted text may be wrapped, spaced, quoted and upper-case", "[ticket]") {
    Ticket t = base_ticket();
    add_candidate(t, PP_CANDIDATE_LOCAL, "192.168.1.23", 47000);
    add_candidate(t, PP_CANDIDATE_REFLEXIVE, "2001:db8::7", 61000);
    set_relay(t, {"turn.example.org", 3478, "1767225600:pixelpass", "nZ3dVp25BhbbepDvxqpLxeGjR/E="});
    std::string text = encode(t);
    std::string upper = text;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) { return static_cast<char>(std::toupper(c)); });

    for (const std::string &pasted :
         {with_spacing(text, 20, "\n"), with_spacing(text, 20, "\r\n"), with_spacing(text, 4, " "),
          with_spacing(text, 33, "\t \v\f"), "<" + text + ">", "\"" + text + "\"", "'" + text + "'",
          "`" + text + "`", "  \n" + text + "\n\n", upper, with_spacing(upper, 7, "\n> "),
          "Pxp" + text.substr(3), "\"<`" + with_spacing(text, 1, " ") + "`>\"",
          // What chat apps and word processors add: no-break, zero-width and narrow spaces, a
          // byte-order mark, typographic quotes and guillemets.
          "\u201c" + with_spacing(text, 25, "\u00a0") + "\u201d", "\ufeff" + text + "\u200b",
          "\u2018" + with_spacing(text, 9, "\u200d\u202f") + "\u2019", "\u00ab " + text + " \u00bb",
          "\u2039" + with_spacing(text, 50, "\u2060\u200c\u2007") + "\u203a"}) {
        INFO(pasted);
        CHECK(decode(pasted, kNow) == t);
    }
}

// ---- JSON -------------------------------------------------------------------------------------

TEST_CASE("to_json describes the ticket without its secrets", "[ticket]") {
    Ticket t = base_ticket();
    add_candidate(t, PP_CANDIDATE_LOCAL, "192.168.1.23", 47000);
    add_candidate(t, PP_CANDIDATE_RELAYED, "2001:db8::1", 50000);
    set_relay(t, {"turn.example.org", 3478, "1767225600:pixelpass", "nZ3dVp25BhbbepDvxqpLxeGjR/E="});
    t.expiry = kNow;
    std::string text = to_json(t);
    auto j = nlohmann::json::parse(text);
    CHECK(j["version"] == 1);
    CHECK(j["fingerprint"] == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    CHECK(j["secret_hash"] == "ba22b7dc");  // sha256(40 41 .. 4f), from Python's hashlib
    CHECK(j["candidates"] == nlohmann::json::parse(R"([{"kind":"local","address":"192.168.1.23","port":47000},
                                                      {"kind":"relayed","address":"2001:db8::1","port":50000}])"));
    CHECK(j["relay"] == nlohmann::json::parse(R"({"host":"turn.example.org","port":3478,
                                                 "username":"1767225600:pixelpass","credential_hash":"a0f4886b"})"));
    CHECK(j["expiry"] == kNow);
    CHECK(j["expires_at"] == "2026-01-01T00:00:00Z");
    CHECK(j["length"] == encode(t).size());
    CHECK(text.find("\"version\":1,\"fingerprint\"") != std::string::npos);  // documented key order
    CHECK(text.find("404142434445464748494a4b4c4d4e4f") == std::string::npos);  // never the secret
    CHECK(text.find("nZ3dVp25") == std::string::npos);

    Ticket bare = base_ticket();
    auto b = nlohmann::json::parse(to_json(bare));
    CHECK(b["candidates"].empty());
    CHECK(b["relay"].is_null());
    CHECK(b["expiry"].is_null());
    CHECK(b["expires_at"].is_null());
    CHECK(b["length"] == encode(bare).size());

    // Relay usernames are arbitrary bytes: invalid UTF-8 must not make to_json throw.
    set_relay(bare, {"h", 1, "\xff\xfe", ""});
    CHECK(nlohmann::json::parse(to_json(bare))["relay"]["username"].is_string());
    bare.expiry = -1;
    CHECK(failure_of([&] { to_json(bare); }).code == PP_ERR_INVALID_ARGUMENT);
}

TEST_CASE("a one-viewer ticket says so in flag bit 3; tickets without it are unchanged", "[ticket]") {
    Ticket t = base_ticket();
    add_candidate(t, PP_CANDIDATE_LOCAL, "192.0.2.1", 4433);
    const std::string plain = encode(t);
    CHECK_FALSE(decode(plain, kNow).one_viewer);
    CHECK((body_of(plain)[1] & 0x08) == 0);  // tickets written before the flag read the same
    CHECK_FALSE(nlohmann::json::parse(to_json(t))["one_viewer"].get<bool>());

    t.one_viewer = true;
    const std::string one = encode(t);
    CHECK(one.size() == plain.size());  // a flag bit: no longer
    CHECK(body_of(one)[1] == 0x08);
    Ticket back = decode(one, kNow);
    CHECK(back.one_viewer);
    CHECK(back == t);
    CHECK(encode(back) == one);
    CHECK(nlohmann::json::parse(to_json(t))["one_viewer"].get<bool>());
    // The fuzz seed tests/fuzz/corpus/ticket/valid-one-viewer is this ticket with port 4433.
    CHECK(one == "pxpaeeaaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hyqibaueq2eivdeoscjjjfuytkoj4aqjqaaaiarculmuyz7g");

    // A ticket from before the flag (the fuzz seed valid-bare) still decodes, without it.
    Ticket old = decode("pxpaeaaccapcyosikzshfaeotsvlrrwu4lyp6di3fe3uku3bn56yxgnhwqqamfbcga7eywtio2cjfifoxtfnqakes57tq", kNow);
    CHECK_FALSE(old.one_viewer);
    // The bits above it are still unknown.
    auto body = body_of(one);
    body[1] = 0x18;
    require_failure(seal(body), PP_ERR_TICKET_MALFORMED, "malformed ticket: unknown flag bits 0x10 are set");
}

TEST_CASE("encode refuses tickets that break a limit", "[ticket]") {
    Ticket t = base_ticket();
    t.expiry = -5;
    CHECK(failure_of([&] { encode(t); }).detail == "ticket expiry must not be negative");
    t = base_ticket();
    t.secret.resize(15);
    CHECK(failure_of([&] { encode(t); }).detail == "ticket secret must be 16 to 32 bytes, not 15");
    t = base_ticket();
    t.candidates.push_back({PP_CANDIDATE_LOCAL, "not-an-address", 1});
    CHECK(failure_of([&] { encode(t); }).detail == "candidate 1 is not a numeric IPv4 or IPv6 address");
    t.candidates.back() = {PP_CANDIDATE_LOCAL, "10.0.0.1", 0};
    CHECK(failure_of([&] { encode(t); }).detail == "candidate 1 has port 0");
    // A kind value a C caller could pass: written as bytes, never loaded as an enum here.
    t.candidates.back() = {PP_CANDIDATE_LOCAL, "10.0.0.1", 1};
    const int nine = 9;
    std::memcpy(&t.candidates.back().kind, &nine, sizeof nine);
    CHECK(failure_of([&] { encode(t); }).detail == "candidate 1 has an unknown kind");
    t.candidates.assign(17, {PP_CANDIDATE_LOCAL, "10.0.0.1", 1});
    CHECK(failure_of([&] { encode(t); }).detail == "a ticket holds at most 16 candidates, not 17");
    t = base_ticket();
    t.relay = Relay{"bad host", 1, "", ""};
    CHECK(failure_of([&] { encode(t); }).code == PP_ERR_INVALID_ARGUMENT);
}

// ---- properties -------------------------------------------------------------------------------

TEST_CASE("random tickets round trip and resist damage", "[ticket][property]") {
    std::mt19937_64 rng(0x7069786570617373ull);  // fixed: a failure is reproducible
    const int kTickets = 3000;
    size_t substitutions = 0, deletions = 0, cuts = 0;
    for (int n = 0; n < kTickets; ++n) {
        Ticket t = random_ticket(rng);
        std::string text = encode(t);
        INFO("ticket " << n << ": " << text);
        REQUIRE(decode(text, 0) == t);
        REQUIRE(nlohmann::json::parse(to_json(t))["length"] == text.size());

        // Any single character replaced by another alphabet character: always an error.
        for (int k = 0; k < 4; ++k) {
            std::string bad = text;
            size_t pos = 3 + rng() % (text.size() - 3);
            char replacement;
            do replacement = kBase32Alphabet[rng() % 32];
            while (replacement == bad[pos]);
            bad[pos] = replacement;
            INFO("position " << pos + 1 << " -> " << replacement);
            auto f = decode_error(bad, 0);
            REQUIRE(f);
            CHECK((f->code == PP_ERR_TICKET_CHECKSUM || f->code == PP_ERR_TICKET_TRUNCATED ||
                   f->code == PP_ERR_TICKET_MALFORMED));
            ++substitutions;
        }
        // Any single character dropped: an error (usually "truncated: 1 character missing").
        {
            std::string bad = text;
            bad.erase(3 + rng() % (text.size() - 3), 1);
            REQUIRE(decode_error(bad, 0));
            ++deletions;
        }
        // Any cut: truncated, never more missing than the truth.
        {
            size_t len = 3 + rng() % (text.size() - 3);
            auto f = decode_error(text.substr(0, len), 0);
            REQUIRE(f);
            REQUIRE(f->code == PP_ERR_TICKET_TRUNCATED);
            ++cuts;
        }
    }
    INFO(substitutions << " substitutions, " << deletions << " deletions, " << cuts << " cuts");
    CHECK(substitutions == 4 * kTickets);
}

TEST_CASE("garbage is never accepted", "[ticket][property]") {
    std::mt19937_64 rng(42);
    for (int n = 0; n < 5000; ++n) {
        // Alphabet characters after the prefix: the best-formed garbage there is.
        std::string text = "pxpa";
        size_t len = rng() % 400;
        for (size_t i = 0; i < len; ++i) text += kBase32Alphabet[rng() % 32];
        INFO(text);
        REQUIRE(decode_error(text, 0));
        // Arbitrary bytes.
        std::string bytes(rng() % 200, '\0');
        for (auto &c : bytes) c = static_cast<char>(rng());
        REQUIRE(decode_error(bytes, 0));
        REQUIRE(decode_error("pxp" + bytes, 0));
    }
}

// ---- sizes ------------------------------------------------------------------------------------

TEST_CASE("typical ticket lengths", "[ticket][size]") {
    // Realistic shapes: a 16-byte secret (what the host mints), home-network and ISP addresses,
    // and a TURN relay with coturn REST-API credentials ("expiry:user" and base64 HMAC-SHA1).
    const char *addresses[] = {"192.168.1.23", "2a02:8071:5e3:1d00:1c4f:9aff:fe12:3456", "203.0.113.7",
                               "2a02:8071:5e3:1d00:85b1:2cf0:77a3:e014", "10.8.0.5", "198.51.100.23"};
    const bool is_v6[] = {false, true, false, true, false, false};
    const uint16_t ports[] = {47000, 47000, 61123, 47000, 47000, 47001};

    auto length = [&](size_t count, bool one_port, bool relay) {
        Ticket t = base_ticket();
        size_t body = 1 + 1 + 32 + 1 + 16 + 1 + (one_port && count >= 2 ? 2 : 0);
        for (size_t i = 0; i < count; ++i) {
            add_candidate(t, i < 2 ? PP_CANDIDATE_LOCAL : PP_CANDIDATE_REFLEXIVE, addresses[i], one_port ? 47000 : ports[i]);
            body += 1 + (is_v6[i] ? 16 : 4) + (one_port && count >= 2 ? 0 : 2);
        }
        if (relay) {
            set_relay(t, {"turn.example.org", 3478, "1767225600:pixelpass", "nZ3dVp25BhbbepDvxqpLxeGjR/E="});
            t.expiry = 1767225600;
            body += 1 + 1 + 16 + 2 + 1 + 20 + 1 + 28 + 5;
        }
        std::string text = encode(t);
        CHECK(text.size() == 3 + base32_length(body + 4));  // the documented layout, byte for byte
        CHECK(decode(text, 0) == t);
        return text.size();
    };

    std::ostringstream table;
    table << "candidates (IPv4/IPv6) | mixed ports | one port | + relay & expiry (mixed) | + relay & expiry (one port)\n";
    for (size_t count : {1, 3, 6}) {
        size_t v6 = std::count(is_v6, is_v6 + count, true);
        table << count << " (" << count - v6 << "/" << v6 << ") | " << length(count, false, false) << " | "
              << length(count, true, false) << " | " << length(count, false, true) << " | " << length(count, true, true)
              << "\n";
    }
    std::cout << "Typical ticket lengths in characters:\n" << table.str() << std::flush;
    WARN(table.str());
}

TEST_CASE("the access token binds the expiry to the secret") {
    std::vector<uint8_t> secret(16, 0x42);
    // No expiry: the secret itself, as every ticket before expiry binding sent it.
    std::string hex;
    for (int i = 0; i < 16; ++i) hex += "42";
    REQUIRE(pp::ticket::access_token(secret, 0) == hex);
    std::string at = pp::ticket::access_token(secret, 1767225600);
    REQUIRE(at.size() == 64);
    REQUIRE(at == pp::ticket::access_token(secret, 1767225600));  // the host derives the same
    REQUIRE(at != pp::ticket::access_token(secret, 1767225601));  // a later expiry: another token
    REQUIRE(at.find(pp::ticket::access_token(secret, 0)) == std::string::npos);
    std::vector<uint8_t> other(16, 0x43);
    REQUIRE(at != pp::ticket::access_token(other, 1767225600));
}
