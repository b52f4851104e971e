#include "repair/repair.hpp"

#include "common/error.hpp"

namespace pp::repair {

std::string run(bool) {
    throw Error(PP_ERR_UNSUPPORTED,
                "repair is not implemented yet: it lands with per-app audio routing");
}

} // namespace pp::repair
