#include "identity/identity.hpp"

#include <ctime>
#include <vector>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "common/random.hpp"

namespace pp {
namespace {

void check(int rc, const char *what) {
    if (rc < 0) throw Error(PP_ERR_CRYPTO, std::string(what) + ": " + gnutls_strerror(rc));
}

Fingerprint spki_fingerprint(gnutls_x509_crt_t certificate) {
    gnutls_pubkey_t pubkey = nullptr;
    check(gnutls_pubkey_init(&pubkey), "pubkey init");
    std::unique_ptr<gnutls_pubkey_st, decltype(&gnutls_pubkey_deinit)> owner(pubkey, gnutls_pubkey_deinit);
    check(gnutls_pubkey_import_x509(pubkey, certificate, 0), "import public key");
    gnutls_datum_t spki{};
    check(gnutls_pubkey_export2(pubkey, GNUTLS_X509_FMT_DER, &spki), "export public key");
    Fingerprint out{};
    int rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, out.data());
    gnutls_free(spki.data);
    check(rc, "hash public key");
    return out;
}

} // namespace

std::shared_ptr<Identity> Identity::generate() {
    std::shared_ptr<Identity> id(new Identity());
    check(gnutls_x509_privkey_init(&id->key_), "key init");
    check(gnutls_x509_privkey_generate(id->key_, GNUTLS_PK_EDDSA_ED25519, 256, 0), "generate key");

    check(gnutls_x509_crt_init(&id->certificate_), "certificate init");
    gnutls_x509_crt_t crt = id->certificate_;
    check(gnutls_x509_crt_set_version(crt, 3), "certificate version");
    uint8_t serial[16];
    random_bytes(serial);
    serial[0] &= 0x7f;  // a positive INTEGER
    check(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), "certificate serial");
    // The certificate is only a carrier for the pinned key: validity is generous and the name
    // is not checked by viewers.
    time_t now = time(nullptr);
    check(gnutls_x509_crt_set_activation_time(crt, now - 24 * 3600), "certificate start");
    check(gnutls_x509_crt_set_expiration_time(crt, now + 30 * 24 * 3600), "certificate end");
    static const char kName[] = "pixelpass";
    check(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, kName, sizeof kName - 1),
          "certificate name");
    check(gnutls_x509_crt_set_key(crt, id->key_), "certificate key");
    check(gnutls_x509_crt_sign2(crt, crt, id->key_, GNUTLS_DIG_UNKNOWN, 0), "self-sign");

    check(gnutls_certificate_allocate_credentials(&id->credentials_), "credentials");
    check(gnutls_certificate_set_x509_key(id->credentials_, &crt, 1, id->key_), "credentials key");
    id->fingerprint_ = spki_fingerprint(crt);
    return id;
}

Identity::~Identity() {
    if (credentials_) gnutls_certificate_free_credentials(credentials_);
    if (certificate_) gnutls_x509_crt_deinit(certificate_);
    if (key_) gnutls_x509_privkey_deinit(key_);
}

std::string Identity::fingerprint_hex() const { return to_hex(fingerprint_); }

std::vector<uint8_t> Identity::certificate_der() const {
    gnutls_datum_t der{};
    check(gnutls_x509_crt_export2(certificate_, GNUTLS_X509_FMT_DER, &der), "export certificate");
    // gnutls_free is a function-pointer variable, so the deleter type is spelled out.
    std::unique_ptr<unsigned char, void (*)(void *)> owner(der.data, gnutls_free);
    return std::vector<uint8_t>(der.data, der.data + der.size);
}

Fingerprint certificate_fingerprint(std::span<const uint8_t> der_certificate) {
    gnutls_x509_crt_t crt = nullptr;
    check(gnutls_x509_crt_init(&crt), "certificate init");
    std::unique_ptr<gnutls_x509_crt_int, decltype(&gnutls_x509_crt_deinit)> owner(crt, gnutls_x509_crt_deinit);
    gnutls_datum_t datum{const_cast<uint8_t *>(der_certificate.data()),
                         static_cast<unsigned>(der_certificate.size())};
    check(gnutls_x509_crt_import(crt, &datum, GNUTLS_X509_FMT_DER), "parse peer certificate");
    return spki_fingerprint(crt);
}

} // namespace pp
