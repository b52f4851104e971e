// libFuzzer target for the viewer's local HTTP server's request reading (llhttp and our decision
// on top of it): what any local process can send to 127.0.0.1:<port>. The first byte picks the
// size of the reads the rest arrives in. The outcome must not depend on how the bytes were split;
// a served request is GET or HEAD with a path no longer than the header limit; a refusal is 400,
// 405 or 431; and nothing read after the outcome changes it.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "viewer/http_request.hpp"

using pp::viewer::RequestReader;

namespace {
constexpr size_t kMaxHeader = 1024;  // small, so the fuzzer reaches the 431 limit too

RequestReader::Outcome read(std::string_view input, size_t chunk) {
    RequestReader reader(kMaxHeader);
    for (size_t off = 0; off < input.size() && reader.outcome().kind == RequestReader::Outcome::more; off += chunk)
        reader.feed(input.substr(off, chunk));
    return reader.outcome();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t chunk = 1 + data[0] % 64;
    std::string_view input(reinterpret_cast<const char *>(data + 1), size - 1);
    auto whole = read(input, input.size() + 1);
    auto split = read(input, chunk);
    if (whole.kind != split.kind || whole.head != split.head || whole.path != split.path ||
        whole.status != split.status)
        std::abort();
    switch (whole.kind) {
    case RequestReader::Outcome::serve:
        if (whole.path.size() > kMaxHeader || whole.path.find('?') != std::string::npos) std::abort();
        break;
    case RequestReader::Outcome::refuse:
        if (whole.status != 400 && whole.status != 405 && whole.status != 431) std::abort();
        break;
    case RequestReader::Outcome::more:
        if (input.size() >= kMaxHeader) std::abort();  // the limit always ends the reading
        break;
    }
    RequestReader reader(kMaxHeader);
    auto first = reader.feed(input);
    auto again = reader.feed("GET /other HTTP/1.1\r\n\r\n");
    if (first.kind != RequestReader::Outcome::more &&
        (again.kind != first.kind || again.path != first.path || again.status != first.status))
        std::abort();
    return 0;
}
