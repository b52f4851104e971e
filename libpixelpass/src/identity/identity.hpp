// identity: the host's per-session key pair, its self-signed certificate for TLS 1.3, and the
// SHA-256 fingerprint of its public key that tickets pin. A fresh identity per host session means
// a leaked ticket stops working when the session ends.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "pixelpass.h"

namespace pp {

using Fingerprint = std::array<uint8_t, PP_FINGERPRINT_SIZE>;

class Identity {
public:
    // Generates an Ed25519 key and a self-signed certificate. Throws pp::Error(PP_ERR_CRYPTO).
    static std::shared_ptr<Identity> generate();

    ~Identity();
    Identity(const Identity &) = delete;
    Identity &operator=(const Identity &) = delete;

    const Fingerprint &fingerprint() const { return fingerprint_; }
    std::string fingerprint_hex() const;

    // Credentials for a TLS server session presenting this identity (owned by the Identity).
    gnutls_certificate_credentials_t credentials() const { return credentials_; }

    // The self-signed certificate in DER, as a peer receives it (QUIC/TLS tests, pinning checks).
    // Throws pp::Error(PP_ERR_CRYPTO).
    std::vector<uint8_t> certificate_der() const;

private:
    Identity() = default;
    gnutls_x509_privkey_t key_ = nullptr;
    gnutls_x509_crt_t certificate_ = nullptr;
    gnutls_certificate_credentials_t credentials_ = nullptr;
    Fingerprint fingerprint_{};
};

// SHA-256 over the DER SubjectPublicKeyInfo of a DER certificate — what a viewer compares with the
// ticket. Throws pp::Error(PP_ERR_CRYPTO) if the certificate does not parse.
Fingerprint certificate_fingerprint(std::span<const uint8_t> der_certificate);

} // namespace pp
