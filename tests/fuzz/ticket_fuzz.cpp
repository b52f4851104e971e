// libFuzzer target for the ticket decoder: arbitrary bytes as pasted text. Decoding must never
// crash or read out of bounds, only throw pp::Error; and whatever decodes must re-encode to the
// same canonical text (the cleaned input, lower-cased) and decode back to the same ticket — so
// the decoder accepts exactly one text per ticket.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "ticket/ticket.hpp"

namespace {

// The characters chat apps add that the decoder ignores (docs/TICKET.md): no-break and
// zero-width spaces, byte-order marks, typographic quotes and guillemets, as UTF-8. Written out
// here rather than taken from the decoder, so the fuzzer checks the decoder against the spec.
constexpr std::string_view kIgnoredUtf8[] = {
    "\u00a0", "\u202f", "\u2007", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
    "\u2018", "\u2019", "\u201c", "\u201d", "\u00ab", "\u00bb", "\u2039", "\u203a"};

// What the decoder keeps of a pasted text, lower-cased: the encoder's output for the same ticket.
std::string canonical(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size();) {
        bool ignored = false;
        for (std::string_view seq : kIgnoredUtf8) {
            if (text.substr(i, seq.size()) == seq) {
                i += seq.size();
                ignored = true;
                break;
            }
        }
        if (ignored) continue;
        char c = text[i++];
        switch (c) {
        case ' ': case '\t': case '\r': case '\n': case '\v': case '\f':
        case '<': case '>': case '"': case '\'': case '`':
            continue;
        default:
            out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        }
    }
    return out;
}

[[noreturn]] void die(const char *what, std::string_view input) {
    std::fprintf(stderr, "ticket_fuzz: %s\ninput: %.*s\n", what, static_cast<int>(input.size()), input.data());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    pp::ticket::Ticket ticket;
    try {
        ticket = pp::ticket::decode(text, 0);  // time 0: expiry never rejects, so more is explored
    } catch (const pp::Error &e) {
        if (e.code() == PP_ERR_TICKET_EXPIRED || std::string_view(e.what()).empty()) die("unexpected error", text);
        return 0;
    }
    std::string again;
    try {
        again = pp::ticket::encode(ticket);
        pp::ticket::to_json(ticket);
    } catch (const pp::Error &e) {
        die(e.what(), text);
    }
    if (again != canonical(text)) die("re-encoding differs from the decoded text", text);
    try {
        if (!(pp::ticket::decode(again, 0) == ticket)) die("round trip changed the ticket", text);
    } catch (const pp::Error &e) {
        die(e.what(), text);
    }
    return 0;
}
