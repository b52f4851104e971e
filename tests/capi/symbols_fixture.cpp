// symbols_fixture: a shared library that leaks what libpixelpass must not, so the
// exported-symbols check is itself tested (it must report these leaks). It defines one proper
// pp_ function, one plain C function without the prefix, and a static data member of a class
// template in a default-visibility namespace — how std:: and header-only libraries (nlohmann/json)
// leak unique ('u') or weak symbols from a library built with -fvisibility=hidden.
namespace fixture __attribute__((visibility("default"))) {
template <typename T>
struct Registry {
    static T count;
};
template <typename T>
T Registry<T>::count{};
} // namespace fixture

extern "C" __attribute__((visibility("default"))) int pp_fixture_ok(void) { return 1; }

extern "C" __attribute__((visibility("default"))) int fixture_leaked(void) { return 2; }

extern "C" __attribute__((visibility("default"))) int pp_fixture_count(void) {
    return ++fixture::Registry<int>::count;
}
