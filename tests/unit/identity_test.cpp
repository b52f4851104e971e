// Unit tests for the identity module: fresh keys per session, the fingerprint format, and that a
// viewer recomputing the fingerprint from the certificate it receives gets what the ticket pins.
#include <algorithm>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "identity/identity.hpp"

TEST_CASE("every generated identity has its own fingerprint", "[identity]") {
    std::set<pp::Fingerprint> seen;
    for (int i = 0; i < 8; ++i) {
        auto id = pp::Identity::generate();
        REQUIRE(id);
        CHECK(id->credentials() != nullptr);
        CHECK(seen.insert(id->fingerprint()).second);
    }
    CHECK(seen.size() == 8);
}

TEST_CASE("fingerprint_hex is 64 lowercase hex digits of the fingerprint", "[identity]") {
    auto id = pp::Identity::generate();
    std::string hex = id->fingerprint_hex();
    CHECK(hex.size() == 64);
    CHECK(std::all_of(hex.begin(), hex.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
    CHECK(hex == pp::to_hex(id->fingerprint()));
}

TEST_CASE("the certificate's SPKI fingerprint is the identity's fingerprint", "[identity]") {
    auto a = pp::Identity::generate();
    auto b = pp::Identity::generate();
    std::vector<uint8_t> der = a->certificate_der();
    REQUIRE(der.size() > 100);
    CHECK(der[0] == 0x30);  // a DER SEQUENCE
    CHECK(pp::certificate_fingerprint(der) == a->fingerprint());
    CHECK(pp::certificate_fingerprint(b->certificate_der()) == b->fingerprint());
    CHECK(pp::certificate_fingerprint(der) != b->fingerprint());
    CHECK(a->certificate_der() == der);  // stable: the same certificate every time
}

TEST_CASE("certificate_fingerprint rejects what is not a certificate", "[identity]") {
    auto expect_crypto_error = [](std::vector<uint8_t> bytes) {
        try {
            pp::certificate_fingerprint(bytes);
            FAIL("accepted garbage");
        } catch (const pp::Error &e) {
            CHECK(e.code() == PP_ERR_CRYPTO);
            CHECK(std::string(e.what()).rfind("parse peer certificate: ", 0) == 0);
        }
    };
    expect_crypto_error({});
    expect_crypto_error({0x30, 0x03, 0x02, 0x01, 0x00});
    std::vector<uint8_t> garbage(300);
    for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 37 + 11);
    expect_crypto_error(garbage);
    // A real certificate cut short is no certificate either.
    auto der = pp::Identity::generate()->certificate_der();
    der.resize(der.size() / 2);
    expect_crypto_error(der);
}
