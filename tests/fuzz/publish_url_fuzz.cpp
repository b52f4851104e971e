// libFuzzer target for publish URL parsing (--publish, [host] publish, pp_host_options.publish):
// arbitrary bytes as URL, and after the first newline as stream key. Parsing must only ever throw
// pp::Error; what parses must have a label that shows neither the key nor a passphrase value, and
// must parse again from its own URL to the same target.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "publish/target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view input(reinterpret_cast<const char *>(data), size);
    size_t nl = input.find('\n');
    std::string_view url = input.substr(0, nl);
    std::string_view key = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
    pp::publish::Target t;
    try {
        t = pp::publish::parse_target(url, key);
    } catch (const pp::Error &) {
        return 0;
    }
    // The key is the URL's last segment, and the label shows it masked (the key text itself may
    // also occur, by chance, inside the application name the URL gives).
    if (t.uses_key && !t.label.ends_with("/***")) std::abort();
    pp::publish::Target again = pp::publish::parse_target(t.url);
    if (again.url != t.url || again.label != t.label || again.protocol != t.protocol) std::abort();
    return 0;
}
