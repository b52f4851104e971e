/*
 * ticket_roundtrip: the smallest useful pixelpass program. It creates a host (a fresh key pair and
 * access secret), prints the host's fingerprint and ticket, decodes the ticket back and prints
 * what it holds as JSON. Nothing is shared and no network is touched: pp_host_start() is what
 * would open the host to viewers.
 *
 *   cc ticket_roundtrip.c $(pkg-config --cflags --libs pixelpass) -o ticket_roundtrip
 */
#include <pixelpass.h>

#include <stdio.h>
#include <stdlib.h>

/* Prints the failed call, the code's name and the library's detail, and returns 1. */
static int report(const char *what, pp_result rc) {
    fprintf(stderr, "ticket_roundtrip: %s: %s: %s\n", what, pp_strerror(rc), pp_last_error());
    return 1;
}

/* The string-getter convention: ask for the size, allocate, fetch. */
static pp_result host_string(pp_result (*get)(pp_host *, char *, size_t, size_t *), pp_host *host,
                             char **out) {
    size_t needed = 0;
    pp_result rc = get(host, NULL, 0, &needed);
    if (rc != PP_ERR_BUFFER_TOO_SMALL) return rc;
    *out = malloc(needed);
    if (!*out) return PP_ERR_NO_MEMORY;
    rc = get(host, *out, needed, &needed);
    if (rc != PP_OK) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int main(void) {
    int status = 1;
    pp_host *host = NULL;
    pp_ticket *ticket = NULL;
    char *fingerprint = NULL, *text = NULL, *json = NULL;
    pp_result rc;

    printf("pixelpass %s (header %s)\n", pp_version(), PIXELPASS_VERSION);

    pp_host_options options = PP_HOST_OPTIONS_INIT;
    options.ticket_lifetime_s = 3600; /* viewers must use the ticket within an hour */
    if ((rc = pp_host_new(&host, &options, NULL, NULL)) != PP_OK) {
        status = report("pp_host_new", rc);
        goto out;
    }
    if ((rc = host_string(pp_host_fingerprint, host, &fingerprint)) != PP_OK) {
        status = report("pp_host_fingerprint", rc);
        goto out;
    }
    if ((rc = host_string(pp_host_ticket, host, &text)) != PP_OK) {
        status = report("pp_host_ticket", rc);
        goto out;
    }
    printf("fingerprint: %s\n", fingerprint);
    printf("ticket: %s\n", text);

    if ((rc = pp_ticket_decode(&ticket, text)) != PP_OK) {
        status = report("pp_ticket_decode", rc);
        goto out;
    }
    size_t needed = 0;
    if ((rc = pp_ticket_to_json(ticket, NULL, 0, &needed)) != PP_ERR_BUFFER_TOO_SMALL) {
        status = report("pp_ticket_to_json (size)", rc);
        goto out;
    }
    json = malloc(needed);
    if (!json || (rc = pp_ticket_to_json(ticket, json, needed, &needed)) != PP_OK) {
        status = report("pp_ticket_to_json", json ? rc : PP_ERR_NO_MEMORY);
        goto out;
    }
    printf("decoded: %s\n", json);
    status = 0;

out:
    free(json);
    free(text);
    free(fingerprint);
    pp_ticket_free(ticket);
    pp_host_free(host);
    return status;
}
