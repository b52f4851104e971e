// libFuzzer target for config editing (pp_config_set, `pixelpass config set`): the file text,
// the key and the JSON value, separated by NUL bytes, all arbitrary. Editing may only throw
// pp::Error; when the file was valid and the edit succeeds, the result is a valid config (what
// set() writes must load again); and an error never repeats the value (it may be the relay
// secret).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "config/config.hpp"

namespace config = pp::config;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view input(reinterpret_cast<const char *>(data), size);
    size_t a = input.find('\0');
    if (a == std::string_view::npos) return 0;
    size_t b = input.find('\0', a + 1);
    if (b == std::string_view::npos) return 0;
    std::string_view text = input.substr(0, a), key = input.substr(a + 1, b - a - 1),
                     value_text = input.substr(b + 1);
    auto value = nlohmann::json::parse(value_text, nullptr, false);
    if (value.is_discarded()) return 0;
    bool valid = true;
    try {
        config::parse(text, "fuzz.toml");
    } catch (const pp::Error &) {
        valid = false;
    }
    std::string out;
    try {
        out = config::edit(text, key, value, "fuzz.toml");
    } catch (const pp::Error &e) {
        // A string value of 8+ characters that the text and key do not already hold must not
        // appear in the message, unless the message would hold it for any value (the fuzzer
        // finds values that are words of the message itself: "ax_viewers must b").
        if (value.is_string()) {
            const auto &s = value.get_ref<const std::string &>();
            if (s.size() >= 8 && text.find(s) == std::string_view::npos && key.find(s) == std::string_view::npos &&
                std::string_view(e.what()).find(s) != std::string_view::npos) {
                std::string canary_message;
                try {
                    config::edit(text, key, std::string(s.size(), '\x07'), "fuzz.toml");
                } catch (const pp::Error &c) {
                    canary_message = c.what();
                }
                if (canary_message.find(s) == std::string::npos) std::abort();
            }
        }
        return 0;
    }
    if (valid) {
        try {
            config::parse(out, "fuzz.toml");
        } catch (const pp::Error &) {
            std::abort();  // set() would have written a file that no longer loads
        }
    }
    return 0;
}
