/*
 * completions.c - the OpenAI-compatible completions client (completions.h):
 * libcurl multi, a queue of requests with their next allowed start time
 * (retries wait out their backoff there), a fixed set of easy handles (the
 * concurrency), and the disk cache consulted before anything is sent.
 */
#include "completions.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "fs.h"
#include "json.h"

#define MAX_BACKOFF_MS 60000.0

typedef struct {
    CURL *h;
    size_t req;
    int busy;
    wn_buf resp;
    char errbuf[CURL_ERROR_SIZE];
} slot;

wn_err wn_cc_global_init(wn_errbuf *err)
{
    static int done;
    if (done) return WN_OK;
    if (curl_global_init(CURL_GLOBAL_DEFAULT))
        return wn_fail(err, WN_ERR_INTERNAL, "libcurl could not be initialised");
    done = 1;
    return WN_OK;
}

/* The request body, the same bytes for the same inputs (the cache key). */
static wn_err build_body(const wn_cc_opts *o, const wn_cc_req *r, wn_buf *out)
{
    wn_jw w;
    wn_buf_clear(out);
    wn_jw_init(&w, out, 0);
    wn_jw_obj_begin(&w);
    if (o->model && o->model[0]) {
        wn_jw_key(&w, "model");
        wn_jw_str(&w, o->model);
    }
    if (o->chat) {
        wn_jw_key(&w, "messages");
        wn_jw_arr_begin(&w);
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "role"); wn_jw_str(&w, "user");
        wn_jw_key(&w, "content"); wn_jw_strn(&w, r->prompt, r->prompt_len);
        wn_jw_obj_end(&w);
        wn_jw_arr_end(&w);
    } else {
        wn_jw_key(&w, "prompt");
        wn_jw_strn(&w, r->prompt, r->prompt_len);
    }
    wn_jw_key(&w, "max_tokens"); wn_jw_i64(&w, o->max_tokens);
    wn_jw_key(&w, "temperature"); wn_jw_f64(&w, o->temperature);
    wn_jw_key(&w, "top_p"); wn_jw_f64(&w, o->top_p);
    if (o->top_k > 0) {
        wn_jw_key(&w, "top_k");
        wn_jw_i64(&w, o->top_k);
    }
    wn_jw_key(&w, "seed"); wn_jw_u64(&w, r->seed);
    wn_jw_obj_end(&w);
    return out->p ? WN_OK : WN_ERR_NOMEM;
}

/* The cache file of a request: CACHE_DIR/xx/<xxh3-128 of URL "\n" body>.json.
 * Returns -1 when out of memory. */
static int cache_path(const wn_cc_opts *o, const wn_buf *body, char *path, size_t cap)
{
    XXH3_state_t *s = XXH3_createState();
    if (!s) return -1;
    XXH3_128bits_reset(s);
    XXH3_128bits_update(s, o->url, strlen(o->url));
    XXH3_128bits_update(s, "\n", 1);
    XXH3_128bits_update(s, body->p, body->len);
    XXH128_hash_t h = XXH3_128bits_digest(s);
    XXH3_freeState(s);
    snprintf(path, cap, "%s/%02x/%016llx%016llx.json", o->cache_dir, (unsigned)(h.high64 >> 56),
             (unsigned long long)h.high64, (unsigned long long)h.low64);
    return 0;
}

/* Reads the completion out of a response body; 0, or -1 with *why. */
static int parse_response(const wn_cc_opts *o, const char *p, size_t n, wn_cc_req *r, const char **why)
{
    size_t off;
    const char *jwhy;
    wn_span choices, first, v, m, usage, t;
    wn_json_iter it;
    if (!n || wn_json_check_object(p, n, &off, &jwhy)) return *why = "the response is not a JSON object", -1;
    if (!wn_json_get(p, n, "choices", &choices) || choices.p[0] != '[')
        return *why = "the response has no 'choices' array", -1;
    wn_json_items_init(&it, choices.p, choices.n);
    if (!wn_json_items_next(&it, &first) || first.p[0] != '{') return *why = "the response's 'choices' is empty", -1;
    if (o->chat) {
        if (!wn_json_get(first.p, first.n, "message", &m) || m.p[0] != '{' || !wn_json_get(m.p, m.n, "content", &v))
            return *why = "choices[0] has no message.content", -1;
    } else if (!wn_json_get(first.p, first.n, "text", &v)) {
        return *why = "choices[0] has no text", -1;
    }
    if (!v.n || v.p[0] != '"') return *why = "the completion is not a string", -1;
    wn_buf_clear(&r->text);
    if (wn_json_decode_string(v, &r->text)) return *why = "out of memory", -1;
    int64_t k = 0;
    r->tokens = 0;
    if (wn_json_get(p, n, "usage", &usage) && usage.p[0] == '{' &&
        wn_json_get(usage.p, usage.n, "completion_tokens", &t) && wn_json_to_i64(t, &k) && k >= 0 && k < UINT32_MAX)
        r->tokens = (uint32_t)k;
    return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    slot *s = arg;
    return wn_buf_append(&s->resp, p, size * n) ? 0 : size * n;
}

static wn_err cache_store(const char *path, const wn_buf *resp, wn_errbuf *err)
{
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    wn_err e = wn_mkdir_p(dir, err);
    return e ? e : wn_write_atomic(path, resp->p, resp->len, err);
}

/* Starts request i on slot s. */
static wn_err start(const wn_cc_opts *o, CURLM *multi, slot *s, size_t i, const wn_buf *body,
                    struct curl_slist *hdrs, wn_errbuf *err)
{
    CURL *h = s->h;
    curl_easy_reset(h);
    wn_buf_clear(&s->resp);
    s->errbuf[0] = 0;
    curl_easy_setopt(h, CURLOPT_URL, o->url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->p);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, s);
    if (curl_multi_add_handle(multi, h) != CURLM_OK) return wn_fail(err, WN_ERR_INTERNAL, "libcurl: cannot add a transfer");
    s->busy = 1;
    s->req = i;
    return WN_OK;
}

/* Classifies a finished attempt: 0 = success, 1 = retryable, 2 = final. */
static int outcome(const wn_cc_opts *o, CURLcode rc, long http, slot *s, wn_cc_req *r, wn_cc_stats *st)
{
    const char *why = NULL;
    if (rc == CURLE_OK && http == 200) {
        if (!parse_response(o, s->resp.p, s->resp.len, r, &why)) return 0;
        r->why = "bad_response";
        snprintf(r->error, sizeof r->error, "%s", why);
        return 1;
    }
    if (rc != CURLE_OK) {
        int timeout = rc == CURLE_OPERATION_TIMEDOUT;
        st->timeouts += (uint64_t)timeout;
        r->why = timeout ? "timeout" : rc == CURLE_COULDNT_CONNECT ? "connect" : "transport";
        snprintf(r->error, sizeof r->error, "%.190s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
        return 1;
    }
    /* an HTTP error: the server's message when it sent one */
    wn_span e, m;
    size_t off;
    const char *jw;
    char msg[120] = "";
    if (s->resp.len && !wn_json_check_object(s->resp.p, s->resp.len, &off, &jw) &&
        wn_json_get(s->resp.p, s->resp.len, "error", &e) && e.p[0] == '{' && wn_json_get(e.p, e.n, "message", &m)) {
        wn_buf t = {0};
        wn_json_decode_string(m, &t);
        snprintf(msg, sizeof msg, ": %.*s", (int)(t.len < 100 ? t.len : 100), t.p ? t.p : "");
        wn_buf_free(&t);
    }
    snprintf(r->error, sizeof r->error, "HTTP %ld%s", http, msg);
    int retry = http >= 500 || http == 408 || http == 409 || http == 429;
    r->why = http >= 500 ? "http_5xx" : http == 429 ? "http_429" : "http_4xx";
    return retry ? 1 : 2;
}

wn_err wn_cc_run(const wn_cc_opts *o, wn_cc_req *reqs, size_t n, wn_cc_stats *st, wn_errbuf *err)
{
    double t0 = wn_now();
    int nslots = o->concurrency > 0 ? o->concurrency : 1;
    wn_buf *bodies = wn_calloc(n ? n : 1, sizeof *bodies);
    double *ready = wn_calloc(n ? n : 1, sizeof *ready);
    size_t *queue = wn_calloc(n ? n : 1, sizeof *queue);
    slot *slots = wn_calloc((size_t)nslots, sizeof *slots);
    CURLM *multi = curl_multi_init();
    struct curl_slist *hdrs = NULL;
    wn_buf auth = {0};
    char path[4400];
    size_t nq = 0;
    int active = 0;
    wn_err e = bodies && ready && queue && slots && multi ? WN_OK : wn_fail(err, WN_ERR_NOMEM, "out of memory");
    if (!e) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
        if (o->api_key && o->api_key[0] && !wn_buf_printf(&auth, "Authorization: Bearer %s", o->api_key))
            hdrs = curl_slist_append(hdrs, auth.p);
        if (!hdrs) e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; !e && k < nslots; k++)
        if (!(slots[k].h = curl_easy_init())) e = wn_fail(err, WN_ERR_INTERNAL, "libcurl: cannot create a handle");
    /* the cache first; what it lacks goes to the queue */
    for (size_t i = 0; !e && i < n; i++) {
        wn_cc_req *r = &reqs[i];
        r->ok = r->cached = r->attempts = 0;
        r->tokens = 0;
        r->why = NULL;
        r->error[0] = 0;
        if ((e = build_body(o, r, &bodies[i]))) break;
        if (o->cache_dir) {
            wn_buf hit = {0};
            wn_errbuf ignored;
            const char *why;
            if (cache_path(o, &bodies[i], path, sizeof path)) {
                e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
                break;
            }
            if (wn_exists(path) && !wn_read_file(path, &hit, &ignored) && !parse_response(o, hit.p, hit.len, r, &why)) {
                r->ok = r->cached = 1;
                st->cache_hits++;
            }
            wn_buf_free(&hit);
            if (r->ok) continue;
        }
        queue[nq++] = i;
    }
    while (!e && (nq || active)) {
        double now = wn_now(), next = -1;
        /* start what may start, in queue order */
        for (size_t q = 0; q < nq && active < nslots;) {
            size_t i = queue[q];
            if (ready[i] > now) {
                if (next < 0 || ready[i] < next) next = ready[i];
                q++;
                continue;
            }
            int k = 0;
            while (slots[k].busy) k++;
            if ((e = start(o, multi, &slots[k], i, &bodies[i], hdrs, err))) break;
            reqs[i].attempts++;
            st->requests++;
            active++;
            memmove(queue + q, queue + q + 1, (nq - q - 1) * sizeof *queue);
            nq--;
        }
        if (e) break;
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            slot *s;
            long http = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &http);
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(multi, s->h);
            s->busy = 0;
            active--;
            wn_cc_req *r = &reqs[s->req];
            int how = outcome(o, rc, http, s, r, st);
            if (how == 0) {
                r->ok = 1;
                r->why = NULL;
                r->error[0] = 0;
                if (o->cache_dir) {
                    if (cache_path(o, &bodies[s->req], path, sizeof path)) e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
                    if (e || (e = cache_store(path, &s->resp, err))) break;
                }
                continue;
            }
            st->failures++;
            if (how == 1 && r->attempts <= o->retries) {
                double wait = (double)o->backoff_ms * (double)(1ull << (r->attempts - 1 < 20 ? r->attempts - 1 : 20));
                ready[s->req] = wn_now() + (wait < MAX_BACKOFF_MS ? wait : MAX_BACKOFF_MS) / 1e3;
                queue[nq++] = s->req;
                st->retries++;
            } else {
                st->failed++;
            }
        }
        if (e) break;
        /* wait for activity, or until the next retry may start */
        long wait_ms = 100;
        if (!active && next >= 0) {
            double d = (next - wn_now()) * 1e3;
            wait_ms = d < 1 ? 1 : d > 1000 ? 1000 : (long)d;
        }
        if (active || nq) curl_multi_poll(multi, NULL, 0, (int)wait_ms, NULL);
    }
    for (int k = 0; slots && k < nslots; k++) {
        if (slots[k].busy) curl_multi_remove_handle(multi, slots[k].h);
        if (slots[k].h) curl_easy_cleanup(slots[k].h);
        wn_buf_free(&slots[k].resp);
    }
    if (multi) curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    wn_buf_free(&auth);
    for (size_t i = 0; bodies && i < n; i++) wn_buf_free(&bodies[i]);
    wn_free(bodies);
    wn_free(ready);
    wn_free(queue);
    wn_free(slots);
    st->seconds += wn_now() - t0;
    return e;
}
