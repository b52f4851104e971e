#include "nat/relay_config.hpp"

#include <vector>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "common/random.hpp"

namespace pp::nat {

std::string new_relay_secret() {
    std::vector<uint8_t> bytes(32);
    random_bytes(bytes);
    return to_hex(bytes);
}

std::string relay_config(const std::string &public_host, const std::string &secret, unsigned port) {
    if (public_host.empty() || public_host.find_first_of(" \t\r\n\"'") != std::string::npos)
        throw Error(PP_ERR_INVALID_ARGUMENT, "the relay's public host name or address is required (no spaces)");
    if (secret.size() < 16 || secret.find_first_of(" \t\r\n\"'") != std::string::npos)
        throw Error(PP_ERR_INVALID_ARGUMENT, "the relay secret must be at least 16 characters without spaces");
    std::string host_spec = public_host.find(':') != std::string::npos ? "[" + public_host + "]" : public_host;
    std::string p = std::to_string(port);
    return "# coturn configuration for a pixelpass relay (/etc/turnserver.conf); see docs/relay.md.\n"
           "# pixelpass speaks TURN over UDP with REST-API credentials that hosts mint from this secret.\n"
           "listening-port=" + p + "\n"
           "fingerprint\n"
           "use-auth-secret\n"
           "static-auth-secret=" + secret + "\n"
           "realm=" + public_host + "\n"
           "min-port=49152\n"
           "max-port=65535\n"
           "no-tls\n"
           "no-dtls\n"
           "no-cli\n"
           "no-multicast-peers\n"
           "# Relay only to the internet, never into the relay's own networks.\n"
           "denied-peer-ip=0.0.0.0-0.255.255.255\n"
           "denied-peer-ip=10.0.0.0-10.255.255.255\n"
           "denied-peer-ip=100.64.0.0-100.127.255.255\n"
           "denied-peer-ip=127.0.0.0-127.255.255.255\n"
           "denied-peer-ip=169.254.0.0-169.254.255.255\n"
           "denied-peer-ip=172.16.0.0-172.31.255.255\n"
           "denied-peer-ip=192.168.0.0-192.168.255.255\n"
           "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n"
           "denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n"
           "# Behind a NAT, add external-ip=<public address>/<private address> and\n"
           "# allowed-peer-ip=<public address> (pixelpass peers reach each other relay-to-relay).\n"
           "\n"
           "# pixelpass host with this relay (the secret stays on the host; tickets carry\n"
           "# short-lived credentials):\n"
           "#   pixelpass host --relay turn:" + host_spec + ":" + p + " --relay-secret " + secret + "\n";
}

} // namespace pp::nat
