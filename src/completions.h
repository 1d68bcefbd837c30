/*
 * completions.h - a client for OpenAI-compatible completion endpoints
 * (/v1/completions, /v1/chat/completions), built on libcurl's multi
 * interface: many prompts in flight at once (a concurrency limit), retries
 * with exponential backoff, per-request timeouts, and a response cache on
 * disk keyed by a hash of the request, so that a resumed or repeated run
 * does not send a request twice. The synthesize stage's endpoint mode is its
 * user; `winnow serve` is the server it is tested against.
 *
 * A request is the JSON body {"model", "prompt" (or "messages": [{"role":
 * "user", "content"}]), "max_tokens", "temperature", "top_p", ["top_k"],
 * "seed"}, written the same way every time for the same inputs. The cache key
 * is xxh3-128 of the URL and that body; an entry is the server's response
 * body, stored as CACHE_DIR/xx/<32 hex digits>.json (written to a temporary
 * name and renamed, so an entry is whole or absent). A response is usable
 * when it is a JSON object with choices[0].text (completions) or
 * choices[0].message.content (chat); usage.completion_tokens is read when
 * present.
 *
 * Retries: a transport error (connection refused, reset, timeout), HTTP 408,
 * 409, 429 or 5xx, or an unusable 200 body is retried up to `retries` times,
 * the k-th retry after backoff_ms x 2^(k-1) (capped at 60 s); other 4xx
 * statuses fail at once. A request that fails every attempt is reported
 * failed with the last cause; nothing else is dropped. The results never
 * depend on the order in which responses arrive.
 */
#ifndef WN_COMPLETIONS_H
#define WN_COMPLETIONS_H

#include "wn.h"

typedef struct {
    const char *url;        /* the full endpoint URL */
    int chat;               /* 1: chat/completions request and response shapes */
    const char *model;      /* "model" in the request ("" = omitted) */
    const char *api_key;    /* sent as "Authorization: Bearer KEY"; NULL = none */
    int concurrency;        /* requests in flight at once, >= 1 */
    int retries;            /* retries after the first attempt */
    long timeout_ms;        /* whole-request timeout */
    long connect_timeout_ms;
    long backoff_ms;        /* first retry's delay */
    const char *cache_dir;  /* NULL = no cache */
    double temperature, top_p;
    int top_k;              /* sent when > 0 (a winnow serve extension) */
    int max_tokens;
} wn_cc_opts;

typedef struct {
    /* in */
    const char *prompt;
    size_t prompt_len;
    uint64_t seed;
    /* out */
    wn_buf text;            /* the completion (owned; reused between runs) */
    uint32_t tokens;        /* usage.completion_tokens, 0 when absent */
    int ok, cached, attempts;
    const char *why;        /* when !ok: "timeout", "connect", "http_5xx", "http_4xx", "bad_response", ... */
    char error[200];        /* when !ok: the last cause, in words */
} wn_cc_req;

typedef struct {
    uint64_t requests;   /* HTTP requests sent (attempts) */
    uint64_t failures;   /* attempts that failed (retried or not) */
    uint64_t retries;
    uint64_t timeouts;
    uint64_t cache_hits;
    uint64_t failed;     /* requests given up on */
    double seconds;
} wn_cc_stats;

/* Once per process, before any thread uses the client (curl_global_init). */
wn_err wn_cc_global_init(wn_errbuf *err);

/* Runs reqs[0..n), filling each one's outputs and adding to *st. Errors are
 * for the client itself (out of memory, libcurl unusable, a cache directory
 * that cannot be written); failed requests are reported in reqs. */
wn_err wn_cc_run(const wn_cc_opts *o, wn_cc_req *reqs, size_t n, wn_cc_stats *st, wn_errbuf *err);

#endif
