// libFuzzer target for WirePlumber's restore-stream state file (repair reads it and rewrites it
// without chosen targets; any program of the user may have written it). Arbitrary text: the
// targets read must be the same after dropping some of them, minus exactly the dropped ones;
// dropping none changes no byte; every key base that parses keeps its parts.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "repair/restore_state.hpp"

namespace repair = pp::repair;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    auto targets = repair::restore_targets(text);
    if (repair::without_targets(text, {}) != text) std::abort();
    std::set<std::string> drop;
    for (size_t i = 0; i < targets.size(); i += 2) drop.insert(targets[i].key_base);
    std::vector<repair::RestoreTarget> expected;
    for (const auto &t : targets) {
        if (!drop.count(t.key_base)) expected.push_back(t);
        if (auto k = repair::parse_key_base(t.key_base)) {
            if (k->property.empty() || k->property.find(':') != std::string::npos) std::abort();
            if (!t.key_base.ends_with(":" + k->value)) std::abort();
        }
    }
    std::string kept = repair::without_targets(text, drop);
    if (kept.size() > text.size()) std::abort();
    auto after = repair::restore_targets(kept);
    if (after.size() != expected.size()) std::abort();
    for (size_t i = 0; i < after.size(); ++i)
        if (after[i].key_base != expected[i].key_base || after[i].target != expected[i].target) std::abort();
    (void)repair::unescape_state_key(text);
    (void)repair::unescape_keyfile_value(text);
    return 0;
}
