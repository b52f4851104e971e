/*
 * layout_dump: prints the C layout of every struct in pixelpass.h (size and each field's offset)
 * as JSON, so test_api.py can check that the ctypes mirrors in bindings/python match the header
 * the library was built from. A field added to the header without the binding fails that test.
 */
#include "pixelpass.h"

#include <stdio.h>

#define FIELD(type, name) printf("%s\"%s\": %zu", first ? "" : ", ", #name, offsetof(type, name)), first = 0

int main(void) {
    int first;
    printf("{\"pp_event\": {\"size\": %zu, \"fields\": {", sizeof(pp_event));
    first = 1;
    FIELD(pp_event, type); FIELD(pp_event, level); FIELD(pp_event, viewer_id);
    FIELD(pp_event, error); FIELD(pp_event, message); FIELD(pp_event, json);

    printf("}},\n \"pp_host_options\": {\"size\": %zu, \"fields\": {", sizeof(pp_host_options));
    first = 1;
    FIELD(pp_host_options, version); FIELD(pp_host_options, source);
    FIELD(pp_host_options, bind_address); FIELD(pp_host_options, port);
    FIELD(pp_host_options, max_viewers); FIELD(pp_host_options, bitrate_kbps);
    FIELD(pp_host_options, fps); FIELD(pp_host_options, max_height);
    FIELD(pp_host_options, encoder); FIELD(pp_host_options, audio);
    FIELD(pp_host_options, apps); FIELD(pp_host_options, app_count);
    FIELD(pp_host_options, monitor); FIELD(pp_host_options, relay);
    FIELD(pp_host_options, relay_username); FIELD(pp_host_options, relay_password);
    FIELD(pp_host_options, relay_secret); FIELD(pp_host_options, stun_servers);
    FIELD(pp_host_options, stun_server_count); FIELD(pp_host_options, no_stun);
    FIELD(pp_host_options, no_port_mapping); FIELD(pp_host_options, relay_only);
    FIELD(pp_host_options, no_relay); FIELD(pp_host_options, ticket_lifetime_s);
    FIELD(pp_host_options, grace_ms); FIELD(pp_host_options, name);
    FIELD(pp_host_options, dht_bootstrap); FIELD(pp_host_options, dht_bootstrap_count);
    FIELD(pp_host_options, no_dht);
    FIELD(pp_host_options, congestion_control); FIELD(pp_host_options, fixed_bitrate);
    FIELD(pp_host_options, publish); FIELD(pp_host_options, publish_count);
    FIELD(pp_host_options, publish_key);
    FIELD(pp_host_options, one_viewer);
    FIELD(pp_host_options, max_streams_per_viewer);

    printf("}},\n \"pp_viewer_options\": {\"size\": %zu, \"fields\": {", sizeof(pp_viewer_options));
    first = 1;
    FIELD(pp_viewer_options, version); FIELD(pp_viewer_options, ticket);
    FIELD(pp_viewer_options, listen_port); FIELD(pp_viewer_options, connect_timeout_ms);
    FIELD(pp_viewer_options, relay_only); FIELD(pp_viewer_options, no_relay);
    FIELD(pp_viewer_options, stun_servers); FIELD(pp_viewer_options, stun_server_count);
    FIELD(pp_viewer_options, no_stun); FIELD(pp_viewer_options, dht_bootstrap);
    FIELD(pp_viewer_options, dht_bootstrap_count); FIELD(pp_viewer_options, no_dht);

    printf("}},\n \"pp_repair_options\": {\"size\": %zu, \"fields\": {", sizeof(pp_repair_options));
    first = 1;
    FIELD(pp_repair_options, version); FIELD(pp_repair_options, dry_run);

    printf("}},\n \"pp_demo_options\": {\"size\": %zu, \"fields\": {", sizeof(pp_demo_options));
    first = 1;
    FIELD(pp_demo_options, version); FIELD(pp_demo_options, seconds);
    FIELD(pp_demo_options, headless); FIELD(pp_demo_options, encoder);
    FIELD(pp_demo_options, bitrate_kbps); FIELD(pp_demo_options, fps);
    FIELD(pp_demo_options, max_height); FIELD(pp_demo_options, audio);
    FIELD(pp_demo_options, publish); FIELD(pp_demo_options, publish_count);
    FIELD(pp_demo_options, publish_key);
    FIELD(pp_demo_options, dht_bootstrap); FIELD(pp_demo_options, dht_bootstrap_count);
    FIELD(pp_demo_options, no_dht);

    printf("}},\n \"versions\": {\"PIXELPASS_VERSION_MAJOR\": %d, \"PP_HOST_OPTIONS_VERSION\": %d, "
           "\"PP_VIEWER_OPTIONS_VERSION\": %d, \"PP_REPAIR_OPTIONS_VERSION\": %d, "
           "\"PP_FINGERPRINT_SIZE\": %d, \"PP_SECRET_MIN_SIZE\": %d, \"PP_SECRET_MAX_SIZE\": %d}}\n",
           PIXELPASS_VERSION_MAJOR, PP_HOST_OPTIONS_VERSION, PP_VIEWER_OPTIONS_VERSION,
           PP_REPAIR_OPTIONS_VERSION, PP_FINGERPRINT_SIZE, PP_SECRET_MIN_SIZE, PP_SECRET_MAX_SIZE);
    return 0;
}
