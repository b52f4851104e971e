/*
 * header_test: pixelpass.h is valid, warning-free C11 on its own (built with -std=c11 -pedantic
 * -Wall -Wextra -Werror, see tests/capi/meson.build), its initialiser macros fill every field of
 * their structs, and the version macros agree with the library the program runs against.
 * It includes nothing but the public header, on purpose: that is what a C user includes.
 */
#include "pixelpass.h"

/* Compile-time checks: a failure here is a build failure, which is the point of this file. */
_Static_assert(PIXELPASS_VERSION_NUMBER ==
                   ((PIXELPASS_VERSION_MAJOR << 16) | (PIXELPASS_VERSION_MINOR << 8) |
                    PIXELPASS_VERSION_PATCH),
               "PIXELPASS_VERSION_NUMBER is built from the three parts");
_Static_assert(PP_FINGERPRINT_SIZE == 32, "the fingerprint is a SHA-256");
_Static_assert(PP_SECRET_MIN_SIZE >= 16 && PP_SECRET_MIN_SIZE <= PP_SECRET_MAX_SIZE,
               "secret bounds are sane");
_Static_assert(PP_HOST_OPTIONS_VERSION >= 1 && PP_VIEWER_OPTIONS_VERSION >= 1 &&
                   PP_REPAIR_OPTIONS_VERSION >= 1,
               "option versions start at 1 so that a zeroed struct is rejected");
/* The first field of every options struct is the version (docs/ABI.md): the library reads it
 * before anything else to know which layout it was handed. */
_Static_assert(offsetof(pp_host_options, version) == 0, "version first");
_Static_assert(offsetof(pp_viewer_options, version) == 0, "version first");
_Static_assert(offsetof(pp_repair_options, version) == 0, "version first");
/* Codes that applications may have compiled in: never renumbered. */
_Static_assert(PP_OK == 0 && PP_ERR_INVALID_ARGUMENT == -1 && PP_ERR_UNSUPPORTED == -3 &&
                   PP_ERR_BUFFER_TOO_SMALL == -4 && PP_ERR_VERSION == -6 &&
                   PP_ERR_TICKET_PREFIX == -20 && PP_ERR_TICKET_MALFORMED == -26 &&
                   PP_ERR_UNREACHABLE == -40 && PP_ERR_MEDIA == -60 && PP_ERR_CONFIG == -80,
               "pp_result values are frozen");

#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);              \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* The callback type must accept an ordinary C function without a cast. */
static void on_event(const pp_event *event, void *user_data) {
    (void)event;
    (void)user_data;
}

int main(void) {
    /* The _INIT macros must list every field (-Wextra would flag a short list as
     * -Wmissing-field-initializers) and must agree with what the library fills in. */
    pp_host_options host = PP_HOST_OPTIONS_INIT;
    pp_viewer_options viewer = PP_VIEWER_OPTIONS_INIT;
    pp_repair_options repair = PP_REPAIR_OPTIONS_INIT;
    pp_event_cb cb = on_event;

    CHECK(host.version == PP_HOST_OPTIONS_VERSION);
    CHECK(viewer.version == PP_VIEWER_OPTIONS_VERSION);
    CHECK(repair.version == PP_REPAIR_OPTIONS_VERSION);
    CHECK(host.source == NULL && host.name == NULL);
    CHECK(host.audio == 1 && host.monitor == -1);
    CHECK(viewer.ticket == NULL);
    CHECK(repair.dry_run == 0);
    CHECK(cb != NULL);

    pp_host_options from_lib;
    memset(&from_lib, 0x5a, sizeof from_lib);
    CHECK(pp_host_options_init(&from_lib, PP_HOST_OPTIONS_VERSION) == PP_OK);
    /* Field by field (padding bytes may differ). */
    CHECK(from_lib.version == host.version && from_lib.source == host.source &&
          from_lib.bind_address == host.bind_address && from_lib.port == host.port &&
          from_lib.max_viewers == host.max_viewers && from_lib.bitrate_kbps == host.bitrate_kbps &&
          from_lib.fps == host.fps && from_lib.max_height == host.max_height &&
          from_lib.encoder == host.encoder && from_lib.audio == host.audio &&
          from_lib.apps == host.apps && from_lib.app_count == host.app_count &&
          from_lib.monitor == host.monitor && from_lib.relay == host.relay &&
          from_lib.relay_username == host.relay_username &&
          from_lib.relay_password == host.relay_password &&
          from_lib.relay_secret == host.relay_secret && from_lib.stun_servers == host.stun_servers &&
          from_lib.stun_server_count == host.stun_server_count && from_lib.no_stun == host.no_stun &&
          from_lib.no_port_mapping == host.no_port_mapping &&
          from_lib.relay_only == host.relay_only && from_lib.no_relay == host.no_relay &&
          from_lib.ticket_lifetime_s == host.ticket_lifetime_s &&
          from_lib.grace_ms == host.grace_ms && from_lib.name == host.name &&
          from_lib.dht_bootstrap == host.dht_bootstrap &&
          from_lib.dht_bootstrap_count == host.dht_bootstrap_count && from_lib.no_dht == host.no_dht);

    pp_viewer_options viewer_lib;
    memset(&viewer_lib, 0x5a, sizeof viewer_lib);
    CHECK(pp_viewer_options_init(&viewer_lib, PP_VIEWER_OPTIONS_VERSION) == PP_OK);
    CHECK(viewer_lib.version == viewer.version && viewer_lib.ticket == viewer.ticket &&
          viewer_lib.listen_port == viewer.listen_port &&
          viewer_lib.connect_timeout_ms == viewer.connect_timeout_ms &&
          viewer_lib.relay_only == viewer.relay_only && viewer_lib.no_relay == viewer.no_relay &&
          viewer_lib.stun_servers == viewer.stun_servers &&
          viewer_lib.stun_server_count == viewer.stun_server_count &&
          viewer_lib.no_stun == viewer.no_stun && viewer_lib.dht_bootstrap == viewer.dht_bootstrap &&
          viewer_lib.dht_bootstrap_count == viewer.dht_bootstrap_count && viewer_lib.no_dht == viewer.no_dht);

    /* Sizes: plain sanity (pointers and the 64-bit fields are where the header says). */
    CHECK(sizeof(pp_repair_options) >= sizeof(unsigned) + sizeof(int));
    CHECK(sizeof(pp_event) >= 2 * sizeof(const char *) + sizeof(uint64_t));
    CHECK(sizeof(pp_host_options) > offsetof(pp_host_options, name));
    CHECK(sizeof(pp_viewer_options) > offsetof(pp_viewer_options, no_dht));
    CHECK(sizeof(pp_host_options) > offsetof(pp_host_options, no_dht));

    /* The header and the library it runs against are the same version. */
    CHECK(pp_version_number() == PIXELPASS_VERSION_NUMBER);
    CHECK(strcmp(pp_version(), PIXELPASS_VERSION) == 0);

    printf("header_test: pixelpass %s, sizeof host/viewer/repair options %zu/%zu/%zu, event %zu\n",
           PIXELPASS_VERSION, sizeof(pp_host_options), sizeof(pp_viewer_options),
           sizeof(pp_repair_options), sizeof(pp_event));
    if (failures) fprintf(stderr, "header_test: %d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
