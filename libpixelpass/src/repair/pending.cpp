// repair::run_for_buffer: keeps a report that did not fit for the caller's next call (repair.hpp).
#include <optional>

#include "repair/repair.hpp"

namespace pp::repair {

namespace {

struct Pending {
    bool dry_run;
    std::string report;
};
thread_local std::optional<Pending> pending;

} // namespace

std::string run_for_buffer(bool dry_run, size_t capacity) {
    std::string report;
    if (pending && pending->dry_run == dry_run) {
        report = std::move(pending->report);
        pending.reset();
    } else {
        pending.reset();
        report = run(dry_run);
    }
    if (report.size() + 1 > capacity) pending = Pending{dry_run, report};
    return report;
}

} // namespace pp::repair
