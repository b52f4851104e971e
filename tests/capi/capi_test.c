/*
 * capi_test: the C API exercised from C through the public header only, against the shared
 * library — what an application sees. Internals are covered by tests/unit/; this file checks the
 * contract of pixelpass.h: result codes and pp_last_error(), the buffer convention, handle rules,
 * versioned options, the ticket API end to end, and host identity.
 */
#define _POSIX_C_SOURCE 200809L /* setenv, mkdtemp, kill */

#include "pixelpass.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

/* On failure: where, what, and the library's own explanation of its last failure. */
#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n    pp_last_error(): \"%s\"\n",         \
                    __FILE__, __LINE__, #cond, pp_last_error());                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* A call that must return `code` (PP_OK or an error). */
#define ASSERT_RC(code, call)                                                                      \
    do {                                                                                           \
        pp_result rc_ = (call);                                                                    \
        checks++;                                                                                  \
        if (rc_ != (code)) {                                                                       \
            fprintf(stderr, "%s:%d: %s\n    returned %d (%s), expected %d (%s)\n"                  \
                            "    pp_last_error(): \"%s\"\n",                                       \
                    __FILE__, __LINE__, #call, (int)rc_, pp_strerror(rc_), (int)(code),            \
                    pp_strerror(code), pp_last_error());                                           \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* An older program's options struct is only as long as its version's layout: `init` (a
 * pp_*_options_init) fills the byte array `raw` for `version` and must leave every byte from
 * `prefix_end` on as it found it (the fill byte `fill`). */
#define INIT_OLD_LAYOUT(init, type, raw, version, prefix_end, fill)                                \
    do {                                                                                           \
        memset(raw, fill, sizeof raw);                                                             \
        ASSERT_RC(PP_OK, init((type *)(void *)raw, version));                                      \
        int untouched_ = 1;                                                                        \
        for (size_t i_ = (prefix_end); i_ < sizeof raw; i_++) untouched_ &= raw[i_] == (fill);    \
        ASSERT(untouched_);                                                                        \
    } while (0)

static const pp_result all_codes[] = {
    PP_OK,
    PP_ERR_INVALID_ARGUMENT,
    PP_ERR_NO_MEMORY,
    PP_ERR_UNSUPPORTED,
    PP_ERR_BUFFER_TOO_SMALL,
    PP_ERR_STATE,
    PP_ERR_VERSION,
    PP_ERR_CRYPTO,
    PP_ERR_IO,
    PP_ERR_INTERNAL,
    PP_ERR_TICKET_PREFIX,
    PP_ERR_TICKET_VERSION,
    PP_ERR_TICKET_TRUNCATED,
    PP_ERR_TICKET_CHARACTER,
    PP_ERR_TICKET_CHECKSUM,
    PP_ERR_TICKET_EXPIRED,
    PP_ERR_TICKET_MALFORMED,
    PP_ERR_UNREACHABLE,
    PP_ERR_HOST_KEY_MISMATCH,
    PP_ERR_TICKET_REJECTED,
    PP_ERR_HOST_FULL,
    PP_ERR_CONNECTION_LOST,
    PP_ERR_PROTOCOL,
    PP_ERR_MEDIA,
    PP_ERR_MISSING_PLUGIN,
    PP_ERR_CAPTURE_CANCELLED,
    PP_ERR_NO_CAPTURE_SOURCE,
    PP_ERR_PLAYER,
    PP_ERR_CONFIG,
};
#define CODE_COUNT (sizeof all_codes / sizeof all_codes[0])

static const uint8_t fingerprint[PP_FINGERPRINT_SIZE] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};
static const uint8_t secret[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};

/* ---- helpers ---- */

/* The string-getter convention from the application's side: ask the size, allocate, fetch. */
typedef pp_result (*ticket_getter)(const pp_ticket *, char *, size_t, size_t *);
typedef pp_result (*host_getter)(pp_host *, char *, size_t, size_t *);

static char *get_ticket_string(ticket_getter get, const pp_ticket *t) {
    size_t needed = 0;
    if (get(t, NULL, 0, &needed) != PP_ERR_BUFFER_TOO_SMALL || needed == 0) return NULL;
    char *buf = malloc(needed);
    if (buf && get(t, buf, needed, &needed) != PP_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Asks for the size, then fetches; again while the value grew in between: statistics do (a counter
 * gaining a digit between the two calls failed the leak-check run with "1386 bytes is too small"). */
static char *get_host_string(host_getter get, pp_host *h) {
    size_t needed = 0;
    pp_result rc = get(h, NULL, 0, &needed);
    while (rc == PP_ERR_BUFFER_TOO_SMALL && needed > 0) {
        char *buf = malloc(needed);
        if (!buf) return NULL;
        rc = get(h, buf, needed, &needed);
        if (rc == PP_OK) return buf;
        free(buf);
    }
    return NULL;
}

static void to_hex(const uint8_t *bytes, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

/* A ticket with two candidates, a relay and an expiry far in the future, encoded. */
static char *make_full_ticket_text(void) {
    pp_ticket *t = NULL;
    char *text = NULL;
    if (pp_ticket_new(&t, fingerprint, secret, sizeof secret) != PP_OK) return NULL;
    if (pp_ticket_add_candidate(t, PP_CANDIDATE_LOCAL, "192.168.1.20", 4433) == PP_OK &&
        pp_ticket_add_candidate(t, PP_CANDIDATE_REFLEXIVE, "2001:db8::7", 61000) == PP_OK &&
        pp_ticket_set_relay(t, "turn.example.org", 3478, "1700000000:pp", "c3VwZXJzZWNyZXQ=") ==
            PP_OK &&
        pp_ticket_set_expiry(t, 4102444800) == PP_OK) /* 2100-01-01 */
        text = get_ticket_string(pp_ticket_encode, t);
    pp_ticket_free(t);
    return text;
}

/* ---- tests ---- */

static void test_strerror(void) {
    for (size_t i = 0; i < CODE_COUNT; i++) {
        const char *name = pp_strerror(all_codes[i]);
        ASSERT(name != NULL && name[0] != '\0');
        ASSERT(strcmp(name, pp_strerror((pp_result)-1000)) != 0); /* a known code has its own name */
        for (size_t j = 0; j < i; j++) ASSERT(strcmp(name, pp_strerror(all_codes[j])) != 0);
    }
    /* An unknown value still gets a usable string, never NULL. */
    ASSERT(pp_strerror((pp_result)-1000) != NULL && pp_strerror((pp_result)-1000)[0] != '\0');
    ASSERT(pp_strerror((pp_result)12345) != NULL);
}

static void test_version(void) {
    ASSERT(pp_version_number() == PIXELPASS_VERSION_NUMBER);
    ASSERT(strcmp(pp_version(), PIXELPASS_VERSION) == 0);
}

static void test_last_error(void) {
    pp_ticket *t = NULL;
    /* A failure sets a human detail... */
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_new(&t, NULL, secret, sizeof secret));
    ASSERT(t == NULL);
    ASSERT(pp_last_error() != NULL && strlen(pp_last_error()) > 0);
    ASSERT(strstr(pp_last_error(), "fingerprint") != NULL);
    /* ...and the next successful call clears it. */
    ASSERT_RC(PP_OK, pp_ticket_new(&t, fingerprint, secret, sizeof secret));
    ASSERT(strcmp(pp_last_error(), "") == 0);
    /* A different failure replaces the detail. */
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_add_candidate(t, PP_CANDIDATE_LOCAL, "not-an-ip", 1));
    ASSERT(strlen(pp_last_error()) > 0);
    ASSERT(strstr(pp_last_error(), "fingerprint") == NULL);
    ASSERT_RC(PP_OK, pp_ticket_set_expiry(t, 0));
    ASSERT(strcmp(pp_last_error(), "") == 0);
    pp_ticket_free(t);
}

static void test_buffer_convention(void) {
    pp_ticket *t = NULL;
    ASSERT_RC(PP_OK, pp_ticket_new(&t, fingerprint, secret, sizeof secret));

    size_t needed = 0;
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_ticket_encode(t, NULL, 0, &needed));
    ASSERT(needed > 1);
    ASSERT(strlen(pp_last_error()) > 0);

    /* Exactly `needed` bytes is enough, NUL included. */
    char *buf = malloc(needed);
    ASSERT(buf != NULL);
    memset(buf, 'X', needed);
    size_t needed2 = 0;
    ASSERT_RC(PP_OK, pp_ticket_encode(t, buf, needed, &needed2));
    ASSERT(needed2 == needed);
    ASSERT(buf[needed - 1] == '\0' && strlen(buf) == needed - 1);

    /* One byte short fails without writing past the buffer. */
    char *small = malloc(needed + 1);
    ASSERT(small != NULL);
    memset(small, 'X', needed + 1);
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_ticket_encode(t, small, needed - 1, &needed2));
    ASSERT(needed2 == needed);
    ASSERT(small[needed - 1] == 'X' && small[needed] == 'X');

    /* `needed` may be NULL. */
    ASSERT_RC(PP_OK, pp_ticket_encode(t, small, needed, NULL));
    ASSERT(strcmp(small, buf) == 0);
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_ticket_encode(t, NULL, 0, NULL));

    /* The binary getter follows the same shape. */
    uint8_t sec[PP_SECRET_MAX_SIZE];
    size_t sec_size = 0;
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_ticket_secret(t, NULL, 0, &sec_size));
    ASSERT(sec_size == sizeof secret);
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_ticket_secret(t, sec, sizeof secret - 1, &sec_size));
    ASSERT_RC(PP_OK, pp_ticket_secret(t, sec, sizeof secret, &sec_size));
    ASSERT(memcmp(sec, secret, sizeof secret) == 0);

    free(small);
    free(buf);
    pp_ticket_free(t);
}

static void test_ticket_round_trip(void) {
    char *text = make_full_ticket_text();
    ASSERT(text != NULL);
    if (!text) return;
    printf("full ticket (%zu characters): %s\n", strlen(text), text);

    pp_ticket *d = NULL;
    ASSERT_RC(PP_OK, pp_ticket_decode(&d, text));
    ASSERT(d != NULL);
    if (!d) {
        free(text);
        return;
    }

    uint8_t fp[PP_FINGERPRINT_SIZE];
    ASSERT_RC(PP_OK, pp_ticket_fingerprint(d, fp));
    ASSERT(memcmp(fp, fingerprint, sizeof fp) == 0);

    uint8_t sec[PP_SECRET_MAX_SIZE];
    size_t sec_size = 0;
    ASSERT_RC(PP_OK, pp_ticket_secret(d, sec, sizeof sec, &sec_size));
    ASSERT(sec_size == sizeof secret && memcmp(sec, secret, sizeof secret) == 0);

    ASSERT(pp_ticket_expiry(d) == 4102444800);
    ASSERT(pp_ticket_candidate_count(d) == 2);

    pp_candidate_kind kind = PP_CANDIDATE_RELAYED;
    uint16_t port = 0;
    char addr[64];
    size_t needed = 0;
    ASSERT_RC(PP_OK, pp_ticket_candidate(d, 0, &kind, &port, addr, sizeof addr, &needed));
    ASSERT(kind == PP_CANDIDATE_LOCAL && port == 4433 && strcmp(addr, "192.168.1.20") == 0);
    ASSERT(needed == strlen("192.168.1.20") + 1);
    ASSERT_RC(PP_OK, pp_ticket_candidate(d, 1, &kind, &port, addr, sizeof addr, &needed));
    ASSERT(kind == PP_CANDIDATE_REFLEXIVE && port == 61000 && strcmp(addr, "2001:db8::7") == 0);
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_candidate(d, 2, &kind, &port, addr, sizeof addr, &needed));
    /* Size query through the candidate getter too. */
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_ticket_candidate(d, 1, NULL, NULL, NULL, 0, &needed));
    ASSERT(needed == strlen("2001:db8::7") + 1);

    /* Encoding is deterministic: the decoded ticket encodes to the same text. */
    char *again = get_ticket_string(pp_ticket_encode, d);
    ASSERT(again != NULL && strcmp(again, text) == 0);
    free(again);

    /* JSON: fingerprint in hex, the relay without its credential, never the secret. */
    char *json = get_ticket_string(pp_ticket_to_json, d);
    ASSERT(json != NULL);
    if (json) {
        printf("to_json: %s\n", json);
        char fp_hex[2 * PP_FINGERPRINT_SIZE + 1];
        to_hex(fingerprint, sizeof fingerprint, fp_hex);
        char secret_hex[2 * sizeof secret + 1];
        to_hex(secret, sizeof secret, secret_hex);
        ASSERT(json[0] == '{' && json[strlen(json) - 1] == '}');
        ASSERT(strstr(json, fp_hex) != NULL);
        ASSERT(strstr(json, "192.168.1.20") != NULL);
        ASSERT(strstr(json, "2001:db8::7") != NULL);
        ASSERT(strstr(json, "turn.example.org") != NULL);
        ASSERT(strstr(json, "1700000000:pp") != NULL);         /* the username is not secret */
        ASSERT(strstr(json, "c3VwZXJzZWNyZXQ=") == NULL);      /* the credential is */
        ASSERT(strstr(json, secret_hex) == NULL);
        ASSERT(strstr(json, "4102444800") != NULL);
    }
    free(json);

    /* Clearing the relay removes it from the encoding. */
    ASSERT_RC(PP_OK, pp_ticket_set_relay(d, NULL, 0, NULL, NULL));
    char *no_relay = get_ticket_string(pp_ticket_encode, d);
    ASSERT(no_relay != NULL && strlen(no_relay) < strlen(text));
    free(no_relay);

    pp_ticket_free(d);
    free(text);
}

/* Paste damage that must not matter: <>, quotes, spaces, line breaks, tabs, case. */
static void test_paste_tolerance(void) {
    char *text = make_full_ticket_text();
    ASSERT(text != NULL);
    if (!text) return;
    size_t n = strlen(text);
    char *messy = malloc(3 * n + 16);
    ASSERT(messy != NULL);
    if (!messy) {
        free(text);
        return;
    }
    size_t j = 0;
    messy[j++] = '<';
    messy[j++] = '"';
    for (size_t i = 0; i < n; i++) {
        messy[j++] = (i % 2) ? (char)toupper((unsigned char)text[i]) : (char)tolower((unsigned char)text[i]);
        if (i % 17 == 16) messy[j++] = '\n';
        if (i % 23 == 22) messy[j++] = ' ';
        if (i % 31 == 30) messy[j++] = '\t';
    }
    messy[j++] = '"';
    messy[j++] = '>';
    messy[j++] = '\r';
    messy[j++] = '\n';
    messy[j] = '\0';

    pp_ticket *d = NULL;
    ASSERT_RC(PP_OK, pp_ticket_decode(&d, messy));
    char *again = d ? get_ticket_string(pp_ticket_encode, d) : NULL;
    ASSERT(again != NULL && strcmp(again, text) == 0);
    free(again);
    pp_ticket_free(d);
    free(messy);
    free(text);
}

static void expect_decode_error(pp_result code, const char *text, const char *what) {
    pp_ticket *d = (pp_ticket *)&d; /* must be reset to NULL on failure */
    pp_result rc = pp_ticket_decode(&d, text);
    checks++;
    if (rc != code || d != NULL || strlen(pp_last_error()) == 0) {
        fprintf(stderr, "%s:%d: decoding %s gave %d (%s), expected %d (%s); detail \"%s\"\n",
                __FILE__, __LINE__, what, (int)rc, pp_strerror(rc), (int)code, pp_strerror(code),
                pp_last_error());
        failures++;
    } else {
        printf("  %-28s -> %s: %s\n", what, pp_strerror(rc), pp_last_error());
    }
    if (rc == PP_OK) pp_ticket_free(d);
}

static void test_decode_errors(void) {
    char *text = make_full_ticket_text();
    ASSERT(text != NULL);
    if (!text) return;
    size_t n = strlen(text);
    char *damaged = malloc(n + 2);
    ASSERT(damaged != NULL);
    if (!damaged) {
        free(text);
        return;
    }
    printf("decode errors:\n");

    /* Wrong prefix: the first character replaced by one the prefix cannot start with. */
    strcpy(damaged, text);
    damaged[0] = (damaged[0] == 'q' || damaged[0] == 'Q') ? 'z' : 'q';
    expect_decode_error(PP_ERR_TICKET_PREFIX, damaged, "wrong prefix");
    expect_decode_error(PP_ERR_TICKET_PREFIX, "hello world", "not a ticket");
    expect_decode_error(PP_ERR_TICKET_PREFIX, "", "empty text");

    /* Truncated: the last 7 characters lost; the detail says how many are missing. */
    strcpy(damaged, text);
    damaged[n - 7] = '\0';
    expect_decode_error(PP_ERR_TICKET_TRUNCATED, damaged, "7 characters missing");
    ASSERT(strstr(pp_last_error(), "7") != NULL);

    /* A character outside the alphabet in the body; the detail names its position. */
    strcpy(damaged, text);
    damaged[n / 2] = '!';
    expect_decode_error(PP_ERR_TICKET_CHARACTER, damaged, "'!' in the body");
    {
        char pos[32];
        snprintf(pos, sizeof pos, "%zu", n / 2 + 1); /* 1-based position */
        ASSERT(strstr(pp_last_error(), pos) != NULL);
    }

    /* A mistyped body character (one from the alphabet, so only the checksum can notice). */
    strcpy(damaged, text);
    {
        size_t at = n / 2;
        char other = 0;
        for (size_t i = 4; i < n && !other; i++)
            if (tolower((unsigned char)text[i]) != tolower((unsigned char)text[at])) other = text[i];
        ASSERT(other != 0);
        damaged[at] = other;
    }
    expect_decode_error(PP_ERR_TICKET_CHECKSUM, damaged, "one character changed");

    /* Expired: a ticket that ran out in 1970. */
    {
        pp_ticket *t = NULL;
        ASSERT_RC(PP_OK, pp_ticket_new(&t, fingerprint, secret, sizeof secret));
        ASSERT_RC(PP_OK, pp_ticket_set_expiry(t, 60));
        char *old = get_ticket_string(pp_ticket_encode, t);
        ASSERT(old != NULL);
        if (old) expect_decode_error(PP_ERR_TICKET_EXPIRED, old, "expired in 1970");
        free(old);
        pp_ticket_free(t);
    }
    free(damaged);
    free(text);
}

static void test_ticket_argument_checks(void) {
    pp_ticket *t = NULL;
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_new(NULL, fingerprint, secret, sizeof secret));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_new(&t, fingerprint, NULL, 16));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_new(&t, fingerprint, secret, PP_SECRET_MIN_SIZE - 1));
    {
        uint8_t big[PP_SECRET_MAX_SIZE + 1] = {0};
        ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_new(&t, fingerprint, big, sizeof big));
    }
    ASSERT(t == NULL);
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_decode(NULL, "pxp"));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_decode(&t, NULL));

    ASSERT_RC(PP_OK, pp_ticket_new(&t, fingerprint, secret, PP_SECRET_MIN_SIZE));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_add_candidate(t, PP_CANDIDATE_LOCAL, NULL, 1));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_add_candidate(t, PP_CANDIDATE_LOCAL, "example.org", 1));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_add_candidate(t, PP_CANDIDATE_LOCAL, "10.0.0.1", 0));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_add_candidate(t, (pp_candidate_kind)9, "10.0.0.1", 1));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_set_expiry(t, -5));
    /* At most 16 candidates. */
    for (int i = 0; i < 16; i++)
        ASSERT_RC(PP_OK, pp_ticket_add_candidate(t, PP_CANDIDATE_LOCAL, "10.0.0.1", (uint16_t)(1000 + i)));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_add_candidate(t, PP_CANDIDATE_LOCAL, "10.0.0.1", 2000));
    ASSERT(pp_ticket_candidate_count(t) == 16);
    pp_ticket_free(t);
}

/* Every function taking a handle rejects NULL with PP_ERR_INVALID_ARGUMENT and a detail. */
static void test_null_handles(void) {
    char buf[8];
    size_t needed = 0;
    uint8_t bytes[PP_SECRET_MAX_SIZE];

    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_add_candidate(NULL, PP_CANDIDATE_LOCAL, "10.0.0.1", 1));
    ASSERT(strlen(pp_last_error()) > 0);
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_set_relay(NULL, "relay", 3478, "u", "c"));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_set_expiry(NULL, 0));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_encode(NULL, buf, sizeof buf, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_fingerprint(NULL, bytes));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_secret(NULL, bytes, sizeof bytes, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_candidate(NULL, 0, NULL, NULL, buf, sizeof buf, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_ticket_to_json(NULL, buf, sizeof buf, &needed));
    ASSERT(pp_ticket_candidate_count(NULL) == 0);
    ASSERT(pp_ticket_expiry(NULL) == 0);

    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_new(NULL, NULL, NULL, NULL));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_start(NULL));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_stop(NULL));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_ticket(NULL, buf, sizeof buf, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_fingerprint(NULL, buf, sizeof buf, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_stats_json(NULL, buf, sizeof buf, &needed));

    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_viewer_connect(NULL, NULL, NULL, NULL));
    {
        pp_viewer *v = (pp_viewer *)&v;
        ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_viewer_connect(&v, NULL, NULL, NULL));
        ASSERT(v == NULL);
    }
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_viewer_url(NULL, buf, sizeof buf, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_viewer_stats_json(NULL, buf, sizeof buf, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_viewer_wait(NULL, 0));

    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_options_init(NULL, PP_HOST_OPTIONS_VERSION));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_viewer_options_init(NULL, PP_VIEWER_OPTIONS_VERSION));

    /* Freeing NULL is a no-op (and must not touch pp_last_error's validity). */
    pp_ticket_free(NULL);
    pp_host_free(NULL);
    pp_viewer_free(NULL);
    ASSERT(pp_last_error() != NULL);
}

static void test_options_versions(void) {
    pp_host_options ho;
    pp_viewer_options vo;
    ASSERT_RC(PP_ERR_VERSION, pp_host_options_init(&ho, 0));
    ASSERT(strstr(pp_last_error(), "version") != NULL);
    ASSERT_RC(PP_ERR_VERSION, pp_host_options_init(&ho, PP_HOST_OPTIONS_VERSION + 1));
    ASSERT_RC(PP_ERR_VERSION, pp_host_options_init(&ho, 1000));
    ASSERT_RC(PP_ERR_VERSION, pp_viewer_options_init(&vo, 0));
    ASSERT_RC(PP_ERR_VERSION, pp_viewer_options_init(&vo, PP_VIEWER_OPTIONS_VERSION + 1));
    ASSERT_RC(PP_OK, pp_host_options_init(&ho, PP_HOST_OPTIONS_VERSION));
    ASSERT(ho.version == PP_HOST_OPTIONS_VERSION && ho.audio == 1 && ho.monitor == -1);
    ASSERT_RC(PP_OK, pp_viewer_options_init(&vo, PP_VIEWER_OPTIONS_VERSION));
    ASSERT(vo.version == PP_VIEWER_OPTIONS_VERSION && vo.ticket == NULL);

    /* A struct the caller forgot to initialise (version 0) or from a newer header is refused
     * by the functions that take it, before they do anything. */
    pp_host *h = (pp_host *)&h;
    ho.version = 0;
    ASSERT_RC(PP_ERR_VERSION, pp_host_new(&h, &ho, NULL, NULL));
    ASSERT(h == NULL);
    ho.version = PP_HOST_OPTIONS_VERSION + 7;
    ASSERT_RC(PP_ERR_VERSION, pp_host_new(&h, &ho, NULL, NULL));

    pp_viewer *v = (pp_viewer *)&v;
    vo.ticket = "pxp";
    vo.version = PP_VIEWER_OPTIONS_VERSION + 1;
    ASSERT_RC(PP_ERR_VERSION, pp_viewer_connect(&v, &vo, NULL, NULL));
    ASSERT(v == NULL);

    pp_repair_options ro = PP_REPAIR_OPTIONS_INIT;
    ro.version = PP_REPAIR_OPTIONS_VERSION + 1;
    ro.dry_run = 1;
    size_t needed = 0;
    ASSERT_RC(PP_ERR_VERSION, pp_repair(&ro, NULL, 0, &needed));
}

/* Version 1 callers have a struct that ends before `publish`: init writes nothing past it and
 * pp_host_new reads nothing past it. Version 2's publish targets are checked at pp_host_new. */
static void test_publish_options(void) {
    unsigned char raw[sizeof(pp_host_options) + 16];
    INIT_OLD_LAYOUT(pp_host_options_init, pp_host_options, raw, 1, offsetof(pp_host_options, publish), 0xA5);
    pp_host_options v1_opts;
    memcpy(&v1_opts, raw, sizeof v1_opts); /* the garbage after the v1 prefix must be ignored */
    ASSERT(v1_opts.version == 1);
    v1_opts.source = "synthetic";
    pp_host *h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &v1_opts, NULL, NULL));
    pp_host_free(h);

    pp_host_options o = PP_HOST_OPTIONS_INIT;
    ASSERT(o.publish == NULL && o.publish_count == 0 && o.publish_key == NULL);
    const char *bad[] = {"ftp://example.org/live/x"};
    o.publish = bad;
    o.publish_count = 1;
    h = (pp_host *)&h;
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_new(&h, &o, NULL, NULL));
    ASSERT(h == NULL && strstr(pp_last_error(), "unsupported scheme 'ftp'") != NULL);
    const char *keyless[] = {"rtmp://127.0.0.1:1/live"};
    o.publish = keyless;
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_new(&h, &o, NULL, NULL));
    ASSERT(strstr(pp_last_error(), "--publish-key-file") != NULL);
    o.publish_key = "s3cret-key";
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    pp_host_free(h);
}

static int is_lower_hex(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static void test_host_identity(void) {
    pp_host_options o = PP_HOST_OPTIONS_INIT;
    o.source = "synthetic";
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    pp_host *a = NULL, *b = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&a, &o, NULL, NULL));
    ASSERT_RC(PP_OK, pp_host_new(&b, NULL, NULL, NULL)); /* NULL options = defaults */
    ASSERT(a != NULL && b != NULL);
    if (!a || !b) {
        pp_host_free(a);
        pp_host_free(b);
        return;
    }

    char *fa = get_host_string(pp_host_fingerprint, a);
    char *fb = get_host_string(pp_host_fingerprint, b);
    ASSERT(fa != NULL && fb != NULL);
    if (fa && fb) {
        printf("host fingerprints: %s\n                   %s\n", fa, fb);
        ASSERT(is_lower_hex(fa, 2 * PP_FINGERPRINT_SIZE));
        ASSERT(is_lower_hex(fb, 2 * PP_FINGERPRINT_SIZE));
        ASSERT(strcmp(fa, fb) != 0); /* a fresh key pair per host */
    }

    /* The ticket decodes and pins this host's key. */
    char *ta = get_host_string(pp_host_ticket, a);
    char *tb = get_host_string(pp_host_ticket, b);
    ASSERT(ta != NULL && tb != NULL);
    if (ta && fa) {
        printf("host ticket before start (%zu characters): %s\n", strlen(ta), ta);
        pp_ticket *t = NULL;
        ASSERT_RC(PP_OK, pp_ticket_decode(&t, ta));
        if (t) {
            uint8_t fp[PP_FINGERPRINT_SIZE];
            char fp_hex[2 * PP_FINGERPRINT_SIZE + 1];
            ASSERT_RC(PP_OK, pp_ticket_fingerprint(t, fp));
            to_hex(fp, sizeof fp, fp_hex);
            ASSERT(strcmp(fp_hex, fa) == 0);
            uint8_t sec[PP_SECRET_MAX_SIZE];
            size_t sec_size = 0;
            ASSERT_RC(PP_OK, pp_ticket_secret(t, sec, sizeof sec, &sec_size));
            ASSERT(sec_size >= PP_SECRET_MIN_SIZE && sec_size <= PP_SECRET_MAX_SIZE);
            ASSERT(pp_ticket_candidate_count(t) == 0); /* "Before pp_host_start() it has no candidates" */
            pp_ticket_free(t);
        }
    }
    /* Same host, same ticket; other host, other secret and key. */
    char *ta2 = get_host_string(pp_host_ticket, a);
    ASSERT(ta && ta2 && strcmp(ta, ta2) == 0);
    ASSERT(ta && tb && strcmp(ta, tb) != 0);

    char *stats = get_host_string(pp_host_stats_json, a);
    ASSERT(stats != NULL && stats[0] == '{' && stats[strlen(stats) - 1] == '}');

    free(stats);
    free(ta2);
    free(ta);
    free(tb);
    free(fa);
    free(fb);
    pp_host_free(a);
    pp_host_free(b);
}

static void test_host_ticket_lifetime(void) {
    pp_host_options o;
    ASSERT_RC(PP_OK, pp_host_options_init(&o, PP_HOST_OPTIONS_VERSION));
    o.ticket_lifetime_s = 3600;
    pp_host *h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    char *text = h ? get_host_string(pp_host_ticket, h) : NULL;
    ASSERT(text != NULL);
    pp_ticket *t = NULL;
    if (text) ASSERT_RC(PP_OK, pp_ticket_decode(&t, text));
    ASSERT(t != NULL && pp_ticket_expiry(t) > 0);
    pp_ticket_free(t);
    free(text);
    pp_host_free(h);
}

/* Version 2 of pp_host_options: congestion_control is used (and reported in the stats), an
 * unknown name is one clear error; a version-1 caller's shorter struct is filled only as far as
 * it reaches. */
static void test_host_congestion_control(void) {
    pp_host_options o;
    ASSERT_RC(PP_OK, pp_host_options_init(&o, PP_HOST_OPTIONS_VERSION));
    ASSERT(o.congestion_control == NULL && o.fixed_bitrate == 0);
    o.source = "synthetic";
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    o.no_port_mapping = 1;
    o.congestion_control = "bbr2";
    pp_host *h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    ASSERT_RC(PP_OK, pp_host_start(h));
    char *stats = h ? get_host_string(pp_host_stats_json, h) : NULL;
    ASSERT(stats && strstr(stats, "\"congestion_control\":\"bbr2\""));
    free(stats);
    pp_host_free(h);

    o.congestion_control = "vegas";
    h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_start(h));
    ASSERT(strstr(pp_last_error(), "vegas") != NULL && strstr(pp_last_error(), "bbr") != NULL);
    pp_host_free(h);

    pp_host_options v1;
    memset(&v1, 0xAB, sizeof v1);
    ASSERT_RC(PP_OK, pp_host_options_init(&v1, 1));
    ASSERT(v1.version == 1 && v1.name == NULL);
    /* The bytes past version 1's end belong to the caller: untouched. */
    unsigned char tail[sizeof v1.congestion_control];
    memset(tail, 0xAB, sizeof tail);
    ASSERT(memcmp(&v1.congestion_control, tail, sizeof tail) == 0);
}

/* Version 1 viewer options end before `dht_bootstrap` (added in version 2): init writes nothing
 * past that prefix, and pp_viewer_connect reads nothing past it (the garbage below would be
 * dereferenced as a bootstrap list if it did). */
static void test_viewer_options_v1_prefix(void) {
    unsigned char raw[sizeof(pp_viewer_options) + 16];
    INIT_OLD_LAYOUT(pp_viewer_options_init, pp_viewer_options, raw, 1, offsetof(pp_viewer_options, dht_bootstrap),
                    0xA5);
    pp_viewer_options v1_opts;
    memcpy(&v1_opts, raw, sizeof v1_opts);
    ASSERT(v1_opts.version == 1 && v1_opts.ticket == NULL);
    /* A mangled ticket fails in the decoder, after the options were read: proof that the
     * 0xA5 tail (a wild dht_bootstrap pointer and count) was never touched. */
    v1_opts.ticket = "not-a-ticket";
    pp_viewer *v = NULL;
    ASSERT_RC(PP_ERR_TICKET_PREFIX, pp_viewer_connect(&v, &v1_opts, NULL, NULL));
    ASSERT(v == NULL);
}

/* --app names applications whose sound alone is shared; that needs PipeWire. With the
 * environment pointed at no audio server (test_repair_without_audio_server), the host refuses at
 * once, naming --app, instead of sharing everything or nothing silently. The real routing is
 * tests/integration/app_audio_test.py's job (it starts its own PipeWire). */
static void test_app_audio_without_pipewire(void) {
    const char *apps[] = {"appA"};
    pp_host_options o;
    ASSERT_RC(PP_OK, pp_host_options_init(&o, PP_HOST_OPTIONS_VERSION));
    o.source = "test";
    o.audio = 1;
    o.apps = apps;
    o.app_count = 1;
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    o.no_port_mapping = 1;
    pp_host *h = NULL;
    pp_result rc = pp_host_new(&h, &o, NULL, NULL);
    if (rc == PP_OK) rc = pp_host_start(h);
    ASSERT(rc == PP_ERR_IO || rc == PP_ERR_UNSUPPORTED);
    ASSERT(strstr(pp_last_error(), "--app") != NULL);
    pp_host_free(h);
}

/* The DHT rendezvous options: a malformed bootstrap entry is refused when the host starts, with
 * one line naming it; --no-dht starts without any. The rendezvous itself runs against real
 * dhtnodes in tests/netsim/test_rendezvous.py. */
static void test_dht_options(void) {
    const char *bootstrap[] = {"dht.example:notaport"};
    pp_host_options o;
    ASSERT_RC(PP_OK, pp_host_options_init(&o, PP_HOST_OPTIONS_VERSION));
    ASSERT(o.dht_bootstrap == NULL && o.dht_bootstrap_count == 0 && o.no_dht == 0);
    o.source = "synthetic";
    o.no_stun = 1;
    o.no_port_mapping = 1;
    o.dht_bootstrap = bootstrap;
    o.dht_bootstrap_count = 1;
    pp_host *h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_host_start(h));
    ASSERT(strstr(pp_last_error(), "DHT bootstrap") != NULL);
    ASSERT(strstr(pp_last_error(), "dht.example:notaport") != NULL);
    pp_host_free(h);

    o.no_dht = 1; /* the same entry, unused */
    h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    ASSERT_RC(PP_OK, pp_host_start(h));
    pp_host_free(h);
}

/* pp_repair with no audio server to talk to. The environment is pointed at nothing so the result
 * does not depend on the machine running the test (a desktop session would otherwise be repaired
 * for real): built with PipeWire support, repair must refuse with PP_ERR_IO rather than report a
 * clean system it never inspected; built without it, PP_ERR_UNSUPPORTED. A dry run against a real
 * server is tests/unit/repair_test.cpp's job (it starts its own). */
static void test_repair_without_audio_server(void) {
    setenv("XDG_RUNTIME_DIR", "/nonexistent/pixelpass-capi-test", 1);
    setenv("PIPEWIRE_RUNTIME_DIR", "/nonexistent/pixelpass-capi-test", 1);
    setenv("PULSE_SERVER", "unix:/nonexistent/pixelpass-capi-test/pulse/native", 1);
    unsetenv("PIPEWIRE_REMOTE");

    pp_repair_options ro = PP_REPAIR_OPTIONS_INIT;
    ro.dry_run = 1;
    char report[256] = "untouched";
    size_t needed = 0;
#if PP_TEST_HAVE_PIPEWIRE
    ASSERT_RC(PP_ERR_IO, pp_repair(&ro, report, sizeof report, &needed));
    ASSERT(strstr(pp_last_error(), "no PipeWire/PulseAudio server reachable") != NULL);
    ASSERT_RC(PP_ERR_IO, pp_repair(NULL, NULL, 0, &needed));
#else
    ASSERT_RC(PP_ERR_UNSUPPORTED, pp_repair(&ro, report, sizeof report, &needed));
    ASSERT(strstr(pp_last_error(), "PipeWire") != NULL);
    ASSERT_RC(PP_ERR_UNSUPPORTED, pp_repair(NULL, NULL, 0, &needed));
#endif
    ASSERT(strlen(pp_last_error()) > 0);
    ASSERT(strcmp(report, "untouched") == 0);
}

/* The host's stats name the H.264 encoder in use (the CLI's live status line shows it), from
 * start, before any viewer has started the pipeline. Skipped only without media support. */
static void test_host_stats_name_the_encoder(void) {
    pp_host_options o = PP_HOST_OPTIONS_INIT;
    o.source = "test";
    o.encoder = "x264";
    o.audio = 0;
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    o.no_port_mapping = 1;
    o.no_relay = 1;
    pp_host *h = NULL;
    pp_result rc = pp_host_new(&h, &o, NULL, NULL);
    if (rc == PP_ERR_UNSUPPORTED) {
        ASSERT(strstr(pp_last_error(), "media") != NULL);
        return;
    }
    ASSERT_RC(PP_OK, rc);
    if (!h) return;
    rc = pp_host_start(h);
    if (rc == PP_ERR_UNSUPPORTED) {
        ASSERT(strstr(pp_last_error(), "media") != NULL);
        pp_host_free(h);
        return;
    }
    ASSERT_RC(PP_OK, rc);
    char *stats = get_host_string(pp_host_stats_json, h);
    ASSERT(stats != NULL && strstr(stats, "\"encoder\":\"x264enc\"") != NULL);
    if (stats) printf("host stats before any viewer: %.200s...\n", stats);
    free(stats);
    pp_host_free(h);
}

/* As get_host_string: the viewer's statistics can grow between the two calls too. */
static char *get_viewer_string(pp_result (*get)(pp_viewer *, char *, size_t, size_t *), pp_viewer *v) {
    size_t needed = 0;
    pp_result rc = get(v, NULL, 0, &needed);
    while (rc == PP_ERR_BUFFER_TOO_SMALL && needed > 0) {
        char *buf = malloc(needed);
        if (!buf) return NULL;
        rc = get(v, buf, needed, &needed);
        if (rc == PP_OK) return buf;
        free(buf);
    }
    return NULL;
}

/* A player's GET of the viewer's local URL "http://127.0.0.1:PORT/PATH"; the socket, or -1. */
static int open_local_stream(const char *url) {
    unsigned port = 0;
    char path[256];
    if (sscanf(url, "http://127.0.0.1:%u/%255s", &port, path) != 2) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {0, 200000}; /* reads return every 200 ms so the stats are polled */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char request[400];
    int n = snprintf(request, sizeof request, "GET /%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, request, (size_t)n) != n) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

/* The viewer's stats carry the host's verdict on its path ("link", "path_too_poor"; asked every
 * 2 s while a stream runs) and the player queue's skips ("local": "skips", "skipped_bytes", per
 * player "lag_ms"): on loopback, with an adapting media host, the path is measured and
 * not too poor. tests/netsim/test_lossy.py shows the other verdict behind a 300 kbit/s
 * bottleneck. Skipped only without media support. */
static void test_viewer_link_report(void) {
    pp_host_options o = PP_HOST_OPTIONS_INIT;
    o.source = "test";
    o.encoder = "x264";
    o.audio = 0;
    o.bitrate_kbps = 2000;
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    o.no_port_mapping = 1;
    o.no_relay = 1;
    pp_host *h = NULL;
    pp_result rc = pp_host_new(&h, &o, NULL, NULL);
    if (rc == PP_OK) rc = pp_host_start(h);
    if (rc == PP_ERR_UNSUPPORTED) {
        ASSERT(strstr(pp_last_error(), "media") != NULL);
        pp_host_free(h);
        return;
    }
    ASSERT_RC(PP_OK, rc);
    char *ticket = h ? get_host_string(pp_host_ticket, h) : NULL;
    pp_viewer_options vo = PP_VIEWER_OPTIONS_INIT;
    vo.ticket = ticket;
    vo.no_stun = 1;
    vo.no_relay = 1;
    vo.no_dht = 1;
    pp_viewer *v = NULL;
    if (ticket) ASSERT_RC(PP_OK, pp_viewer_connect(&v, &vo, NULL, NULL));
    char *url = v ? get_viewer_string(pp_viewer_url, v) : NULL;
    int fd = url ? open_local_stream(url) : -1;
    ASSERT(fd >= 0);
    char *stats = NULL;
    long bytes = 0;
    int measured = 0;
    /* Generous: the pipeline starts, the host measures over a few ticks, the viewer asks at 2 s. */
    for (time_t end = time(NULL) + 60; fd >= 0 && !measured && time(NULL) < end;) {
        char chunk[65536];
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
        if (got > 0) bytes += got;
        free(stats);
        stats = get_viewer_string(pp_viewer_stats_json, v);
        measured = stats && strstr(stats, "\"measured\":true") != NULL;
    }
    ASSERT(measured);
    ASSERT(bytes > 0);
    ASSERT(stats && strstr(stats, "\"path_too_poor\":false") != NULL);
    ASSERT(stats && strstr(stats, "\"adaptive\":true") != NULL);
    ASSERT(stats && strstr(stats, "\"floor_kbps\":500") != NULL);
    ASSERT(stats && strstr(stats, "\"max_kbps\":2000") != NULL);
    /* The viewer's player queue (viewer/live_queue): a player that keeps up is never skipped;
     * tests/netsim/test_lossy.py pauses one and sees the skips. */
    ASSERT(stats && strstr(stats, "\"skips\":0") != NULL);
    ASSERT(stats && strstr(stats, "\"skipped_bytes\":0") != NULL);
    ASSERT(stats && strstr(stats, "\"lag_ms\":") != NULL);
    if (stats && !measured) fprintf(stderr, "viewer stats: %s\n", stats);
    if (fd >= 0) close(fd);
    free(stats);
    free(url);
    pp_viewer_free(v);
    free(ticket);
    pp_host_free(h);
}

/* pp_demo_run: versioned options, then a real headless run (test source, QUIC on loopback, the
 * in-process decoder) whose report does not fit at first and is kept for the next call. Skipped
 * only when the library is built without media support, which pp_demo_run must then say. */
static void test_demo(void) {
    pp_demo_options o = PP_DEMO_OPTIONS_INIT;
    size_t needed = 0;
    char *report;
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_demo_options_init(NULL, PP_DEMO_OPTIONS_VERSION));
    ASSERT_RC(PP_ERR_VERSION, pp_demo_options_init(&o, PP_DEMO_OPTIONS_VERSION + 1));
    ASSERT_RC(PP_OK, pp_demo_options_init(&o, PP_DEMO_OPTIONS_VERSION));
    ASSERT(o.audio == 1 && o.headless == 0 && o.seconds == 0.0);
    o.version = 99;
    ASSERT_RC(PP_ERR_VERSION, pp_demo_run(&o, NULL, NULL, NULL, 0, &needed));
    pp_demo_options_init(&o, PP_DEMO_OPTIONS_VERSION);
    o.headless = 1;
    o.seconds = 2.0;
    pp_result rc = pp_demo_run(&o, NULL, NULL, NULL, 0, &needed);
    if (rc == PP_ERR_UNSUPPORTED) {
        ASSERT(strstr(pp_last_error(), "media") != NULL);
        return;
    }
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, rc);
    ASSERT(needed > 100);
    if (rc != PP_ERR_BUFFER_TOO_SMALL || needed <= 100) return; /* counted above; no report to read */
    /* A second run measures again: its report may be a few characters longer than the first. */
    needed += 256;
    report = calloc(1, needed);
    rc = pp_demo_run(&o, NULL, NULL, report, needed, &needed);
    ASSERT_RC(PP_OK, rc);
    if (rc != PP_OK) { /* a second run that failed wrote no report: nothing to read below */
        free(report);
        return;
    }
    ASSERT(strstr(report, "\"mode\":\"headless\"") != NULL);
    ASSERT(strstr(report, "\"frames_decoded\":0,") == NULL);
    ASSERT(strstr(report, "\"ok\":true") != NULL);
    free(report);
}

/* True when UDP port `port` on 127.0.0.1 is taken (a dhtnode listening on it). */
static int udp_port_taken(unsigned short port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    int taken;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    taken = bind(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

/* A free UDP port on loopback, chosen by the kernel. */
static unsigned short free_udp_port(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts Debian's dhtnode on `port` (a private DHT of one node on this machine) and waits until
 * it listens; its pid, or -1. */
static pid_t start_dhtnode(unsigned short port) {
    char port_text[16];
    struct timespec tick = {0, 100 * 1000 * 1000};
    pid_t pid;
    int i;
    snprintf(port_text, sizeof port_text, "%u", (unsigned)port);
    pid = fork();
    if (pid == 0) {
        FILE *null_in = freopen("/dev/null", "r", stdin);
        FILE *null_out = freopen("/dev/null", "w", stdout);
        (void)null_in;
        (void)null_out;
        execlp("dhtnode", "dhtnode", "-s", "-p", port_text, (char *)NULL);
        _exit(127);
    }
    for (i = 0; pid > 0 && i < 200; i++) { /* polled, up to 20 s */
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) return -1;
        if (udp_port_taken(port)) return pid;
        nanosleep(&tick, NULL);
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    return -1;
}

static int have_program(const char *name) {
    const char *path = getenv("PATH");
    char dir[4096], full[4200];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n < sizeof dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
            snprintf(full, sizeof full, "%s/%s", n ? dir : ".", name);
            if (access(full, X_OK) == 0) return 1;
        }
        path += n + (path[n] == ':');
    }
    return 0;
}

/* pp_demo_options version 3: with explicit DHT nodes the demo runs the rendezvous end to end on
 * this machine, against a real dhtnode the test starts on loopback: the viewer's sealed offer is
 * stored, and the loopback host receives and opens it (offers_received >= 1, none ignored).
 * Older layouts (version 2) are read as their prefix; a malformed node is refused in one line. */
static void test_demo_rendezvous(void) {
    unsigned char raw[sizeof(pp_demo_options)];
    pp_demo_options *o = (pp_demo_options *)(void *)raw;
    const char *bad[] = {"127.0.0.1:notaport"};
    char node[64];
    const char *nodes[1];
    size_t needed = 0;
    char *report;
    unsigned short port;
    pid_t dht;
    pp_result rc;

    /* A version-2 program's struct ends at publish_key. */
    INIT_OLD_LAYOUT(pp_demo_options_init, pp_demo_options, raw, 2, offsetof(pp_demo_options, dht_bootstrap), 0xAB);
    ASSERT_RC(PP_OK, pp_demo_options_init(o, PP_DEMO_OPTIONS_VERSION));
    ASSERT(o->dht_bootstrap == NULL && o->dht_bootstrap_count == 0 && o->no_dht == 0);

    o->headless = 1;
    o->seconds = 1.0;
    o->dht_bootstrap = bad;
    o->dht_bootstrap_count = 1;
    rc = pp_demo_run(o, NULL, NULL, NULL, 0, &needed);
    if (rc == PP_ERR_UNSUPPORTED) return; /* built without media: test_demo checks the message */
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, rc);
    ASSERT(strstr(pp_last_error(), "127.0.0.1:notaport") != NULL && strchr(pp_last_error(), '\n') == NULL);

    if (!have_program("dhtnode")) {
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0) {
            fprintf(stderr, "test_demo_rendezvous: needs dhtnode (Debian package dhtnode)\n");
            failures++;
        } else {
            printf("test_demo_rendezvous: skipped, needs dhtnode (Debian package dhtnode)\n");
        }
        return;
    }
    port = free_udp_port();
    dht = start_dhtnode(port);
    ASSERT(dht > 0);
    if (dht <= 0) return;
    snprintf(node, sizeof node, "127.0.0.1:%u", (unsigned)port);
    nodes[0] = node;
    o->dht_bootstrap = nodes;
    o->seconds = 2.0;
    needed = 0;
    rc = pp_demo_run(o, NULL, NULL, NULL, 0, &needed);
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, rc);
    report = malloc(needed ? needed : 1);
    ASSERT_RC(PP_OK, pp_demo_run(o, NULL, NULL, report, needed, &needed));
    printf("demo rendezvous: %.300s\n", strstr(report, "\"offers_ignored\"") ? strstr(report, "\"offers_ignored\"") : "(none)");
    ASSERT(strstr(report, "\"ok\":true") != NULL);
    ASSERT(strstr(report, "\"rendezvous\":{") != NULL);
    ASSERT(strstr(report, "\"offers_received\":0") == NULL && strstr(report, "\"offers_received\":") != NULL);
    ASSERT(strstr(report, "\"offers_ignored\":0") != NULL);
    ASSERT(strstr(report, "\"viewer_puts_failed\":0") != NULL);
    free(report);

    o->no_dht = 1; /* the same nodes, unused: no rendezvous in the report */
    needed = 0;
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_demo_run(o, NULL, NULL, NULL, 0, &needed));
    report = malloc(needed ? needed : 1);
    ASSERT_RC(PP_OK, pp_demo_run(o, NULL, NULL, report, needed, &needed));
    ASSERT(strstr(report, "\"rendezvous\":{") == NULL);
    free(report);

    kill(dht, SIGTERM);
    waitpid(dht, NULL, 0);
}

/* Config, pre-flight, clipboard and doctor through the C API, on a private config directory. The
 * bandwidth test targets a closed loopback port: it must fail, be recorded, and never reach out. */
static void test_config_preflight_clipboard_doctor(void) {
    char dir[] = "/tmp/pp-capi-config-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    setenv("XDG_CONFIG_HOME", dir, 1);
    unsetenv("PIXELPASS_SPEEDTEST_URL");
    char buf[4096];
    size_t needed = 0;
    ASSERT_RC(PP_OK, pp_config_path(buf, sizeof buf, &needed));
    ASSERT(strncmp(buf, dir, strlen(dir)) == 0 && strstr(buf, "/pixelpass/config.toml") != NULL);
    ASSERT_RC(PP_OK, pp_config_json(buf, sizeof buf, &needed));
    ASSERT(strstr(buf, "\"exists\":false") != NULL && strstr(buf, "\"default_max_viewers\":2") != NULL);

    ASSERT_RC(PP_OK, pp_config_set("host.max_viewers", "3"));
    ASSERT_RC(PP_OK, pp_config_json(buf, sizeof buf, &needed));
    ASSERT(strstr(buf, "\"default_max_viewers\":3") != NULL);
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_config_set("host.colour", "\"red\""));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_config_set("host.max_viewers", "not json"));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_config_set(NULL, "1"));

    ASSERT_RC(PP_OK, pp_bandwidth_skip());
    ASSERT_RC(PP_OK, pp_config_json(buf, sizeof buf, &needed));
    ASSERT(strstr(buf, "\"status\":\"skipped\"") != NULL);
    double mbps = -1;
    ASSERT_RC(PP_ERR_UNREACHABLE, pp_bandwidth_test("http://127.0.0.1:1/__up", NULL, NULL, &mbps));
    ASSERT(strstr(pp_last_error(), "127.0.0.1:1") != NULL);
    ASSERT_RC(PP_OK, pp_config_json(buf, sizeof buf, &needed));
    ASSERT(strstr(buf, "\"status\":\"failed\"") != NULL);

    /* A broken file: every reader reports line and column; the host refuses to guess. */
    char path[512];
    snprintf(path, sizeof path, "%s/pixelpass/config.toml", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    if (f) {
        fputs("[host]\nmax_viewers = = 2\n", f);
        fclose(f);
    }
    ASSERT_RC(PP_ERR_CONFIG, pp_config_json(buf, sizeof buf, &needed));
    ASSERT(strstr(pp_last_error(), "config.toml:2:") != NULL);
    ASSERT_RC(PP_ERR_CONFIG, pp_config_set("host.max_viewers", "4"));
    pp_host *h = NULL;
    ASSERT_RC(PP_ERR_CONFIG, pp_host_new(&h, NULL, NULL, NULL));
    remove(path);

    /* No display and no terminal: nothing can hold the text, and the error says what to do. */
    unsetenv("DISPLAY");
    unsetenv("WAYLAND_DISPLAY");
    ASSERT_RC(PP_ERR_UNSUPPORTED, pp_clipboard_copy("hello", -1, buf, sizeof buf, &needed));
    ASSERT(strstr(pp_last_error(), "no graphical session") != NULL);

    size_t size = 0;
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_doctor_json(200, NULL, 0, &size));
    char *report = malloc(size);
    ASSERT(report != NULL);
    if (report) {
        ASSERT_RC(PP_OK, pp_doctor_json(200, report, size, &needed));
        ASSERT(strstr(report, "\"can_share\"") != NULL && strstr(report, "H.264 encoder") != NULL);
        /* The suite sets PIXELPASS_PORTMAP=off: doctor says so instead of asking the real router. */
        ASSERT(strstr(report, "port mapping (UPnP / NAT-PMP / PCP)") != NULL &&
               strstr(report, "PIXELPASS_PORTMAP=off") != NULL);
        free(report);
    }
    snprintf(path, sizeof path, "%s/pixelpass", dir);
    rmdir(path);
    rmdir(dir);
}

/* pp_forget_screen deletes the portal's restore token under $XDG_STATE_HOME/pixelpass, once. */
static void test_forget_screen(void) {
    char dir[] = "/tmp/pp-capi-state.XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    setenv("XDG_STATE_HOME", dir, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/pixelpass", dir);
    ASSERT(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/pixelpass/screencast-restore-token", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs("a-token\n", f);
    fclose(f);

    int forgotten = -1;
    ASSERT_RC(PP_OK, pp_forget_screen(&forgotten));
    ASSERT(forgotten == 1);
    ASSERT(access(path, F_OK) != 0);
    ASSERT_RC(PP_OK, pp_forget_screen(&forgotten));
    ASSERT(forgotten == 0);
    ASSERT_RC(PP_OK, pp_forget_screen(NULL));
    snprintf(path, sizeof path, "%s/pixelpass", dir);
    rmdir(path);
    rmdir(dir);
}

/* A fresh relay secret and the coturn configuration that uses it. */
static void test_relay_config(void) {
    char secret[PP_RELAY_SECRET_BUFFER];
    char small[8];
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_relay_secret_new(small, sizeof small));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_relay_secret_new(NULL, sizeof secret));
    ASSERT_RC(PP_OK, pp_relay_secret_new(secret, sizeof secret));
    ASSERT(strlen(secret) == 64);
    char other[PP_RELAY_SECRET_BUFFER];
    ASSERT_RC(PP_OK, pp_relay_secret_new(other, sizeof other));
    ASSERT(strcmp(secret, other) != 0);
    size_t needed = 0;
    ASSERT_RC(PP_ERR_BUFFER_TOO_SMALL, pp_relay_config("relay.example.org", secret, 0, NULL, 0, &needed));
    ASSERT(needed > 100);
    char *text = malloc(needed);
    ASSERT(text != NULL);
    if (text) {
        ASSERT_RC(PP_OK, pp_relay_config("relay.example.org", secret, 0, text, needed, &needed));
        ASSERT(strstr(text, "use-auth-secret") != NULL);
        ASSERT(strstr(text, secret) != NULL);
        ASSERT(strstr(text, "--relay turn:relay.example.org:3478") != NULL);
        free(text);
    }
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_relay_config("", secret, 0, NULL, 0, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_relay_config("relay.example.org", "short", 0, NULL, 0, &needed));
    ASSERT_RC(PP_ERR_INVALID_ARGUMENT, pp_relay_config(NULL, secret, 0, NULL, 0, &needed));
}

/* A mapped candidate (UPnP / NAT-PMP / PCP) keeps its kind through a ticket, and a started host
 * reports its port mapping in the stats (null here: loopback-only, nothing to map). The mapping
 * itself runs against miniupnpd in tests/netsim/test_portmap.py. */
static void test_mapped_candidate(void) {
    pp_ticket *t = NULL;
    ASSERT_RC(PP_OK, pp_ticket_new(&t, fingerprint, secret, sizeof secret));
    ASSERT_RC(PP_OK, pp_ticket_add_candidate(t, PP_CANDIDATE_MAPPED, "203.0.113.9", 40001));
    char *text = t ? get_ticket_string(pp_ticket_encode, t) : NULL;
    pp_ticket_free(t);
    pp_ticket *d = NULL;
    ASSERT(text != NULL);
    if (text) ASSERT_RC(PP_OK, pp_ticket_decode(&d, text));
    pp_candidate_kind kind = PP_CANDIDATE_LOCAL;
    uint16_t port = 0;
    char addr[64];
    size_t needed = 0;
    if (d) ASSERT_RC(PP_OK, pp_ticket_candidate(d, 0, &kind, &port, addr, sizeof addr, &needed));
    ASSERT(kind == PP_CANDIDATE_MAPPED && port == 40001 && strcmp(addr, "203.0.113.9") == 0);
    pp_ticket_free(d);
    free(text);

    pp_host_options o;
    ASSERT_RC(PP_OK, pp_host_options_init(&o, PP_HOST_OPTIONS_VERSION));
    o.source = "synthetic";
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    pp_host *h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    if (h) ASSERT_RC(PP_OK, pp_host_start(h));
    char *stats = h ? get_host_string(pp_host_stats_json, h) : NULL;
    ASSERT(stats != NULL && strstr(stats, "\"port_mapping\":null") != NULL);
    free(stats);
    pp_host_free(h);
}

/* Version 3 of pp_host_options: one_viewer. A version-2 caller's struct ends before it (init
 * writes nothing there); a one-viewer host admits its first viewer and refuses every other one
 * with PP_ERR_TICKET_REJECTED, also after the first left. */
static void test_one_viewer_ticket(void) {
    unsigned char raw[sizeof(pp_host_options)];
    INIT_OLD_LAYOUT(pp_host_options_init, pp_host_options, raw, 2, offsetof(pp_host_options, one_viewer), 0xA5);

    pp_host_options o = PP_HOST_OPTIONS_INIT;
    ASSERT(o.one_viewer == 0);
    o.source = "synthetic";
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    o.no_port_mapping = 1;
    o.no_dht = 1;
    o.max_viewers = 4;
    o.one_viewer = 1;
    pp_host *h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    if (!h) return;
    ASSERT_RC(PP_OK, pp_host_start(h));
    char *text = get_host_string(pp_host_ticket, h);
    ASSERT(text != NULL);
    if (!text) {
        pp_host_free(h);
        return;
    }
    /* The ticket carries the flag: a viewer knows before it dials. */
    pp_ticket *decoded = NULL;
    ASSERT_RC(PP_OK, pp_ticket_decode(&decoded, text));
    char json[1024];
    size_t needed = 0;
    ASSERT_RC(PP_OK, pp_ticket_to_json(decoded, json, sizeof json, &needed));
    ASSERT(strstr(json, "\"one_viewer\":true") != NULL);
    pp_ticket_free(decoded);
    pp_viewer_options vo = PP_VIEWER_OPTIONS_INIT;
    vo.ticket = text;
    vo.no_stun = 1;
    vo.no_dht = 1;
    vo.connect_timeout_ms = 20000;
    pp_viewer *first = NULL, *second = NULL;
    ASSERT_RC(PP_OK, pp_viewer_connect(&first, &vo, NULL, NULL));
    ASSERT_RC(PP_ERR_TICKET_REJECTED, pp_viewer_connect(&second, &vo, NULL, NULL));
    ASSERT(second == NULL && strstr(pp_last_error(), "this ticket admits one viewer and one is already watching") != NULL);
    pp_viewer_free(first);
    ASSERT_RC(PP_ERR_TICKET_REJECTED, pp_viewer_connect(&second, &vo, NULL, NULL)); /* spent */
    char *stats = get_host_string(pp_host_stats_json, h);
    ASSERT(stats != NULL && strstr(stats, "\"refused_one_viewer\":2") != NULL);
    free(stats);
    free(text);
    pp_host_free(h);
}

/* Version 4 of pp_host_options: max_streams_per_viewer. A version-3 caller's struct ends before
 * it (init writes nothing there, the host keeps its default of 2); set to 1, a viewer's second
 * player at the same time is refused by the host (429, counted in totals.refused_streams) while
 * the first keeps its stream. */
static void test_max_streams_per_viewer(void) {
    unsigned char raw[sizeof(pp_host_options)];
    INIT_OLD_LAYOUT(pp_host_options_init, pp_host_options, raw, 3,
                    offsetof(pp_host_options, max_streams_per_viewer), 0xA5);

    pp_host_options o = PP_HOST_OPTIONS_INIT;
    ASSERT(o.max_streams_per_viewer == 0);
    o.source = "synthetic";
    o.bind_address = "127.0.0.1";
    o.no_stun = 1;
    o.no_port_mapping = 1;
    o.no_dht = 1;
    o.max_streams_per_viewer = 1;
    pp_host *h = NULL;
    ASSERT_RC(PP_OK, pp_host_new(&h, &o, NULL, NULL));
    if (!h) return;
    ASSERT_RC(PP_OK, pp_host_start(h));
    char *ticket = get_host_string(pp_host_ticket, h);
    pp_viewer_options vo = PP_VIEWER_OPTIONS_INIT;
    vo.ticket = ticket;
    vo.no_stun = 1;
    vo.no_dht = 1;
    pp_viewer *v = NULL;
    if (ticket) ASSERT_RC(PP_OK, pp_viewer_connect(&v, &vo, NULL, NULL));
    char *url = v ? get_viewer_string(pp_viewer_url, v) : NULL;
    int first = url ? open_local_stream(url) : -1;
    ASSERT(first >= 0);
    /* The first player's stream is flowing before the second asks: both are then concurrent. */
    char chunk[65536];
    long bytes = 0;
    for (time_t end = time(NULL) + 30; first >= 0 && bytes < 65536 && time(NULL) < end;) {
        ssize_t got = read(first, chunk, sizeof chunk);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
        if (got > 0) bytes += got;
    }
    ASSERT(bytes >= 65536);
    int second = url ? open_local_stream(url) : -1;
    ASSERT(second >= 0);
    char answer[4096];
    size_t have = 0;
    for (time_t end = time(NULL) + 30; second >= 0 && have + 1 < sizeof answer && time(NULL) < end;) {
        ssize_t got = read(second, answer + have, sizeof answer - 1 - have);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
        if (got > 0) have += (size_t)got;
        /* Keep the first player reading, as a real one does. */
        ssize_t more = read(first, chunk, sizeof chunk);
        if (more > 0) bytes += more;
    }
    answer[have] = '\0';
    ASSERT(strstr(answer, "too many streams") != NULL);
    ASSERT(strncmp(answer, "HTTP/1.1 200", 12) != 0);
    char *stats = get_host_string(pp_host_stats_json, h);
    ASSERT(stats != NULL && strstr(stats, "\"refused_streams\":1") != NULL);
    free(stats);
    /* The first player still gets its stream. */
    long before = bytes;
    for (time_t end = time(NULL) + 30; first >= 0 && bytes < before + 65536 && time(NULL) < end;) {
        ssize_t got = read(first, chunk, sizeof chunk);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
        if (got > 0) bytes += got;
    }
    ASSERT(bytes >= before + 65536);
    if (first >= 0) close(first);
    if (second >= 0) close(second);
    free(url);
    pp_viewer_free(v);
    free(ticket);
    pp_host_free(h);
}

int main(void) {
    test_strerror();
    test_version();
    test_last_error();
    test_buffer_convention();
    test_ticket_round_trip();
    test_paste_tolerance();
    test_decode_errors();
    test_ticket_argument_checks();
    test_null_handles();
    test_options_versions();
    test_publish_options();
    test_viewer_options_v1_prefix();
    test_host_identity();
    test_host_ticket_lifetime();
    test_host_congestion_control();
    test_mapped_candidate();
    test_repair_without_audio_server();
    test_app_audio_without_pipewire();
    test_demo();
    test_demo_rendezvous();
    test_host_stats_name_the_encoder();
    test_viewer_link_report();
    test_config_preflight_clipboard_doctor();
    test_forget_screen();
    test_relay_config();
    test_dht_options();
    test_one_viewer_ticket();
    test_max_streams_per_viewer();

    printf("capi_test: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
