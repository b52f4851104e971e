#include "common/error.hpp"

namespace pp {

const char *result_name(pp_result code) noexcept {
    switch (code) {
    case PP_OK: return "success";
    case PP_RESULT_FORCE_INT32_: break;  // not a code
    case PP_ERR_INVALID_ARGUMENT: return "invalid argument";
    case PP_ERR_NO_MEMORY: return "out of memory";
    case PP_ERR_UNSUPPORTED: return "not supported yet";
    case PP_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case PP_ERR_STATE: return "wrong state for this call";
    case PP_ERR_VERSION: return "unknown options version";
    case PP_ERR_CRYPTO: return "cryptography failure";
    case PP_ERR_IO: return "input/output error";
    case PP_ERR_INTERNAL: return "internal error";
    case PP_ERR_TICKET_PREFIX: return "not a pixelpass ticket";
    case PP_ERR_TICKET_VERSION: return "unsupported ticket version";
    case PP_ERR_TICKET_TRUNCATED: return "ticket truncated";
    case PP_ERR_TICKET_CHARACTER: return "invalid character in ticket";
    case PP_ERR_TICKET_CHECKSUM: return "ticket checksum mismatch";
    case PP_ERR_TICKET_EXPIRED: return "ticket expired";
    case PP_ERR_TICKET_MALFORMED: return "malformed ticket";
    case PP_ERR_UNREACHABLE: return "host unreachable";
    case PP_ERR_HOST_KEY_MISMATCH: return "host key does not match the ticket";
    case PP_ERR_TICKET_REJECTED: return "ticket rejected by host";
    case PP_ERR_HOST_FULL: return "host is full";
    case PP_ERR_CONNECTION_LOST: return "connection lost";
    case PP_ERR_PROTOCOL: return "protocol error";
    case PP_ERR_MEDIA: return "media pipeline error";
    case PP_ERR_MISSING_PLUGIN: return "missing GStreamer plugin";
    case PP_ERR_CAPTURE_CANCELLED: return "screen share cancelled";
    case PP_ERR_NO_CAPTURE_SOURCE: return "no capture source";
    case PP_ERR_PLAYER: return "player unavailable";
    case PP_ERR_CONFIG: return "configuration error";
    }
    return "unknown error";
}

} // namespace pp
