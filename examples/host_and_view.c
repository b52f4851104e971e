/*
 * host_and_view: a host and a viewer in one process, on loopback. The host shares the built-in
 * synthetic source; the viewer connects with the host's ticket, serves the stream on a local URL
 * (point mpv or VLC at it while this runs) and both print their statistics.
 *
 *   host_and_view [seconds]     (default 5)
 *
 * Exits non-zero with the library's explanation when any step fails — including, until the QUIC
 * tunnel lands, pp_host_start() answering PP_ERR_UNSUPPORTED.
 */
#include <pixelpass.h>

#include <stdio.h>
#include <stdlib.h>

static int report(const char *what, pp_result rc) {
    fprintf(stderr, "host_and_view: %s: %s: %s\n", what, pp_strerror(rc), pp_last_error());
    return 1;
}

/* Events arrive on the library's loop threads: print them and return quickly. */
static void on_event(const pp_event *event, void *user_data) {
    const char *who = user_data;
    if (event->type == PP_EVENT_STATS) return; /* polled below instead */
    printf("[%s] event %d%s%s: %s %s\n", who, (int)event->type,
           event->error != PP_OK ? " " : "", event->error != PP_OK ? pp_strerror(event->error) : "",
           event->message, event->json);
    fflush(stdout);
}

/* Fetches a string with the buffer convention; `get` is one of the host/viewer getters. */
static char *fetch(pp_result (*get)(void *, char *, size_t, size_t *), void *object,
                   pp_result *rc) {
    size_t needed = 0;
    *rc = get(object, NULL, 0, &needed);
    while (*rc == PP_ERR_BUFFER_TOO_SMALL) { /* stats may grow between the two calls */
        char *buf = malloc(needed);
        if (!buf) {
            *rc = PP_ERR_NO_MEMORY;
            return NULL;
        }
        *rc = get(object, buf, needed, &needed);
        if (*rc == PP_OK) return buf;
        free(buf);
    }
    return NULL;
}

/* The getters take typed handles; these adapters let one fetch() serve them all. */
static pp_result host_ticket(void *h, char *b, size_t s, size_t *n) { return pp_host_ticket(h, b, s, n); }
static pp_result host_stats(void *h, char *b, size_t s, size_t *n) { return pp_host_stats_json(h, b, s, n); }
static pp_result viewer_url(void *v, char *b, size_t s, size_t *n) { return pp_viewer_url(v, b, s, n); }
static pp_result viewer_stats(void *v, char *b, size_t s, size_t *n) { return pp_viewer_stats_json(v, b, s, n); }

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 5;
    int status = 1;
    pp_host *host = NULL;
    pp_viewer *viewer = NULL;
    char *ticket = NULL, *url = NULL;
    pp_result rc;

    pp_host_options ho = PP_HOST_OPTIONS_INIT;
    ho.source = "synthetic";
    ho.bind_address = "127.0.0.1"; /* loopback only: nothing leaves this machine */
    ho.audio = 0;
    ho.no_stun = 1;
    ho.no_port_mapping = 1;
    ho.no_relay = 1;
    if ((rc = pp_host_new(&host, &ho, on_event, "host")) != PP_OK) {
        status = report("pp_host_new", rc);
        goto out;
    }
    if ((rc = pp_host_start(host)) != PP_OK) {
        status = report("pp_host_start", rc);
        goto out;
    }
    if (!(ticket = fetch(host_ticket, host, &rc))) {
        status = report("pp_host_ticket", rc);
        goto out;
    }
    printf("ticket: %s\n", ticket);

    pp_viewer_options vo = PP_VIEWER_OPTIONS_INIT;
    vo.ticket = ticket;
    vo.no_stun = 1;
    vo.no_relay = 1;
    vo.connect_timeout_ms = 5000;
    if ((rc = pp_viewer_connect(&viewer, &vo, on_event, "viewer")) != PP_OK) {
        status = report("pp_viewer_connect", rc);
        goto out;
    }
    if (!(url = fetch(viewer_url, viewer, &rc))) {
        status = report("pp_viewer_url", rc);
        goto out;
    }
    printf("play it: mpv %s\n", url);
    fflush(stdout);

    for (int i = 0; i < seconds; i++) {
        rc = pp_viewer_wait(viewer, 1000);
        if (rc != PP_ERR_STATE) { /* the connection ended */
            if (rc != PP_OK) status = report("pp_viewer_wait", rc);
            goto out;
        }
        char *hs = fetch(host_stats, host, &rc);
        char *vs = fetch(viewer_stats, viewer, &rc);
        printf("%2ds host %s\n    viewer %s\n", i + 1, hs ? hs : "?", vs ? vs : "?");
        fflush(stdout);
        free(hs);
        free(vs);
    }
    status = 0;

out:
    pp_viewer_free(viewer); /* the viewer first, so the host sees a clean leave */
    if (host) pp_host_stop(host);
    pp_host_free(host);
    free(url);
    free(ticket);
    return status;
}
