// common/error: the one exception type the internals throw, carrying a public pp_result code and
// a human detail line. The C facade turns it into a return code plus pp_last_error().
#pragma once

#include <stdexcept>
#include <string>

#include "pixelpass.h"

namespace pp {

class Error : public std::runtime_error {
public:
    Error(pp_result code, const std::string &detail) : std::runtime_error(detail), code_(code) {}
    pp_result code() const noexcept { return code_; }

private:
    pp_result code_;
};

// Static English name of a code ("ticket checksum mismatch"); never null.
const char *result_name(pp_result code) noexcept;

} // namespace pp
