// nat/relay_config: what `pixelpass relay config` prints — a coturn configuration for a pixelpass
// relay with a shared secret, and the host flags that match it (docs/relay.md explains both).
#pragma once

#include <string>

namespace pp::nat {

// 64 hex characters from the system's CSPRNG: a fresh coturn static-auth-secret.
std::string new_relay_secret();

// turnserver.conf text for a relay reachable at `public_host` (DNS name or address) using
// `secret`, ending with the pixelpass host line as a comment. Throws
// pp::Error(PP_ERR_INVALID_ARGUMENT) for an empty host or a secret shorter than 16 characters.
std::string relay_config(const std::string &public_host, const std::string &secret, unsigned port = 3478);

} // namespace pp::nat
