// http3/nv: the two conversions both HTTP/3 roles need between nghttp3's byte buffers and
// string views (header fields out, received header names and values in).
#pragma once

#include <nghttp3/nghttp3.h>

#include <string_view>

namespace pp::http3 {

// A header field pointing at `name` and `value`; nghttp3 copies them before the call returns.
inline nghttp3_nv make_nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<uint8_t *>(const_cast<char *>(name.data())),
            reinterpret_cast<uint8_t *>(const_cast<char *>(value.data())), name.size(), value.size(),
            NGHTTP3_NV_FLAG_NONE};
}

// A view of a received header name or value, valid while nghttp3 holds the buffer.
inline std::string_view view(nghttp3_rcbuf *buf) {
    nghttp3_vec v = nghttp3_rcbuf_get_buf(buf);
    return {reinterpret_cast<const char *>(v.base), v.len};
}

} // namespace pp::http3
