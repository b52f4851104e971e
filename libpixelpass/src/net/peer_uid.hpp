// net/peer_uid: which local user owns the other end of an accepted loopback TCP connection.
// TCP has no SO_PEERCRED, but the kernel's socket diagnostics (NETLINK_SOCK_DIAG, what `ss -e`
// reads) report the owner uid of the peer's socket when both ends are on this machine. The
// viewer's local server uses it so that only the user running the viewer gets the stream.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace pp::net {

struct PeerUid {
    std::optional<uid_t> uid;  // the peer socket's owner; empty when it could not be found
    std::string error;         // why not (the peer already left, no sock_diag in this kernel)
};

// `fd` is an accepted TCP socket whose peer is a loopback address (127.0.0.0/8 or ::1).
PeerUid loopback_peer_uid(int fd);

} // namespace pp::net
