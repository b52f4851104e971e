// repair without the `pipewire` feature: says so instead of pretending there is nothing to do.
#include "common/error.hpp"
#include "repair/repair.hpp"

namespace pp::repair {

std::string run(bool) { throw Error(PP_ERR_UNSUPPORTED, "built without PipeWire support: repair is unavailable"); }

} // namespace pp::repair
