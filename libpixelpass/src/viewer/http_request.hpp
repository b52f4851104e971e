// viewer/http_request: reads one HTTP/1.1 request head from a local player (through llhttp) and
// decides what the local server does with it: serve a GET/HEAD for a path, or refuse it with a
// status. No sockets: the server feeds it what it reads, the fuzzer feeds it arbitrary bytes
// (tests/fuzz/local_http_fuzz.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <llhttp.h>

namespace pp::viewer {

class RequestReader {
public:
    struct Outcome {
        enum Kind { more, serve, refuse } kind = more;
        bool head = false;           // serve: a HEAD request (no body wanted)
        std::string path;            // serve: the target's path, without the query
        int status = 0;              // refuse: 400, 405 or 431
        const char *message = "";    // refuse: what the player is told
        const char *llhttp_error = "";  // refuse 400: llhttp's error name, for the debug log
    };

    // Reads at most `max_header_bytes` of request line and headers; more is refused with 431.
    explicit RequestReader(size_t max_header_bytes);
    RequestReader(const RequestReader &) = delete;
    RequestReader &operator=(const RequestReader &) = delete;

    // Feeds the next bytes. Once an outcome other than `more` came back, the reader is done and
    // further calls return that same outcome (what a player sends after its request is ignored).
    const Outcome &feed(std::string_view bytes);
    const Outcome &outcome() const { return outcome_; }

private:
    static int on_url(llhttp_t *parser, const char *at, size_t length);
    static int on_headers_complete(llhttp_t *parser);
    void decide();

    llhttp_settings_t settings_{};
    llhttp_t parser_{};
    size_t max_header_bytes_;
    size_t received_ = 0;
    std::string url_;
    Outcome outcome_;
};

// The path of an origin-form or absolute-form request target, without the query.
std::string_view target_path(std::string_view target);

} // namespace pp::viewer
