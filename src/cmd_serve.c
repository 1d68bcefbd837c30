/*
 * cmd_serve.c - `winnow serve CHECKPOINT --tokenizer T`: the bundled GPT
 * behind an OpenAI-compatible HTTP API on a local port, so the synthesize
 * stage's endpoint mode is tested against a real server, and so a model
 * trained by winnow can be sampled by any client of that API.
 *
 * Endpoints: POST /v1/completions ({"prompt": "...", "max_tokens",
 * "temperature", "top_p", "top_k", "seed", "model"}), POST
 * /v1/chat/completions ({"messages": [{"role", "content"}, ...]}, the
 * messages joined as "Role: content" lines and "Assistant:"), GET /v1/models,
 * GET /health. Responses follow OpenAI's shapes (choices[0].text or
 * choices[0].message.content, finish_reason "stop" or "length", usage); errors
 * are {"error": {"message", "type"}} with 400, 404, 405, 413, 503. A request's
 * completion is a function of its prompt, parameters and seed (the same
 * sampler as the synthesize stage's model mode, src/generate.h), so a client
 * that sends a seed gets reproducible text.
 *
 * HTTP: plain POSIX sockets, HTTP/1.1 with Content-Length bodies (no chunked
 * uploads), one request per connection (Connection: close), a thread per
 * connection (at most MAX_CONN at once; more are answered 503), the model
 * shared under a mutex. Test hooks: --fail-every N answers every N-th request
 * 503; --delay-ms MS (with --delay-every N, every N-th request only) sleeps
 * before answering, outside the model's lock. Each request is logged on
 * stderr as one line: "serve: #N METHOD PATH STATUS ...".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fs.h"
#include "generate.h"
#include "json.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

enum { MAX_HEADER = 64 << 10, MAX_BODY = 4 << 20, MAX_CONN = 64, MAX_NEW_TOKENS = 4096 };

static const char *const usage =
    "usage: winnow serve CHECKPOINT --tokenizer PATH [--port N] [--host ADDR] [--model-name NAME]\n"
    "                    [--port-file FILE] [--threads N] [--fail-every N] [--delay-ms MS] [--delay-every N]\n"
    "  An OpenAI-compatible HTTP server for a winnow GPT checkpoint (.safetensors):\n"
    "  POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health.\n"
    "  --tokenizer PATH   the model's tokenizer (tokenizer.json or a GPT-2 directory)\n"
    "  --port N           TCP port (default 8080; 0 = any free port)\n"
    "  --host ADDR        IPv4 address to listen on (default 127.0.0.1)\n"
    "  --model-name NAME  the name /v1/models lists and responses carry (default: the file name)\n"
    "  --port-file FILE   write the port listened on to FILE once ready (for scripts and tests)\n"
    "  --threads N        OpenMP threads of a forward pass (default 1: small models gain nothing from more)\n"
    "  --fail-every N     test hook: answer every N-th request with 503\n"
    "  --delay-ms MS      test hook: wait MS milliseconds before answering ...\n"
    "  --delay-every N    ... every N-th request only (default: every request)\n";

typedef struct {
    wn_gpt *m;
    wn_tokenizer *tok;
    int64_t eot;
    const char *name;
    long fail_every, delay_ms, delay_every, threads;
    pthread_mutex_t model_lock, count_lock;
    uint64_t requests;
    int conns;
} server;

typedef struct {
    server *sv;
    int fd;
} conn;

/* ---- HTTP ------------------------------------------------------------------- */

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static const char *status_text(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void respond(int fd, int code, const wn_buf *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, status_text(code), body->len);
    if (!send_all(fd, head, (size_t)n) && body->len) send_all(fd, body->p, body->len);
}

static void error_body(wn_buf *out, const char *type, const char *msg)
{
    wn_jw w;
    wn_buf_clear(out);
    wn_jw_init(&w, out, 0);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "error");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "message"); wn_jw_str(&w, msg);
    wn_jw_key(&w, "type"); wn_jw_str(&w, type);
    wn_jw_obj_end(&w);
    wn_jw_obj_end(&w);
}

/* The value of header `name` in the header block h[0..n), or NULL. */
static const char *header(const char *h, size_t n, const char *name, size_t *len)
{
    size_t k = strlen(name);
    for (const char *p = h, *end = h + n; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) eol = end;
        if ((size_t)(eol - p) > k && p[k] == ':' && !strncasecmp(p, name, k)) {
            const char *v = p + k + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            *len = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Reads one request: method, path, body. Returns 0, or an HTTP status to
 * answer with (-1: the peer went away). */
static int read_request(int fd, wn_buf *in, char *method, size_t mcap, char *path, size_t pcap, size_t *body_off,
                        size_t *body_len)
{
    size_t hdr_end = 0;
    for (;;) { /* until the blank line ending the headers */
        char *end = in->len ? memmem(in->p, in->len, "\r\n\r\n", 4) : NULL;
        if (end) {
            hdr_end = (size_t)(end - in->p) + 4;
            break;
        }
        if (in->len >= MAX_HEADER) return 431;
        if (wn_buf_reserve(in, 16384)) return 500;
        ssize_t k = recv(fd, in->p + in->len, 16384, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        in->len += (size_t)k;
    }
    const char *sp1 = memchr(in->p, ' ', hdr_end), *sp2 = sp1 ? memchr(sp1 + 1, ' ', hdr_end - (size_t)(sp1 + 1 - in->p)) : NULL;
    if (!sp1 || !sp2 || (size_t)(sp1 - in->p) >= mcap || (size_t)(sp2 - sp1 - 1) >= pcap) return 400;
    snprintf(method, mcap, "%.*s", (int)(sp1 - in->p), in->p);
    snprintf(path, pcap, "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    size_t vl;
    const char *v = header(in->p, hdr_end, "Transfer-Encoding", &vl);
    if (v) return 501; /* chunked uploads are not supported: send Content-Length */
    *body_len = 0;
    if ((v = header(in->p, hdr_end, "Content-Length", &vl))) {
        char num[32];
        snprintf(num, sizeof num, "%.*s", (int)(vl < 31 ? vl : 31), v);
        char *e;
        unsigned long long n = strtoull(num, &e, 10);
        if (*e || e == num) return 400;
        if (n > MAX_BODY) return 413;
        *body_len = (size_t)n;
    }
    if ((v = header(in->p, hdr_end, "Expect", &vl)) && vl >= 12 && !strncasecmp(v, "100-continue", 12))
        send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    while (in->len < hdr_end + *body_len) {
        if (wn_buf_reserve(in, hdr_end + *body_len - in->len)) return 500;
        ssize_t k = recv(fd, in->p + in->len, hdr_end + *body_len - in->len, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        in->len += (size_t)k;
    }
    *body_off = hdr_end;
    return 0;
}

/* ---- the API ------------------------------------------------------------------ */

typedef struct {
    wn_buf prompt;
    wn_gen_opts o;
    uint64_t seed;
} gen_req;

/* Numeric member `name` of obj into *v when present; -1 when it is not a number. */
static int get_num(const char *obj, size_t n, const char *name, double *v)
{
    wn_span s;
    if (!wn_json_get(obj, n, name, &s) || (s.n == 4 && !memcmp(s.p, "null", 4))) return 0;
    return wn_json_to_double(s, v) ? 1 : -1;
}

/* Parses a completion (chat = 0) or chat request body into r; returns NULL
 * or the message for a 400. */
static const char *parse_request(const char *body, size_t n, int chat, gen_req *r)
{
    size_t off;
    const char *why;
    static _Thread_local char msg[160];
    if (wn_json_check_object(body, n, &off, &why)) {
        snprintf(msg, sizeof msg, "the body is not a JSON object: %s at byte %zu", why, off);
        return msg;
    }
    wn_span v;
    if (!chat) {
        if (!wn_json_get(body, n, "prompt", &v)) return "missing 'prompt'";
        if (!v.n || v.p[0] != '"') return "'prompt' must be one string (arrays of prompts are not supported)";
        if (wn_json_decode_string(v, &r->prompt)) return "out of memory";
    } else {
        if (!wn_json_get(body, n, "messages", &v) || !v.n || v.p[0] != '[') return "missing 'messages' (an array)";
        wn_json_iter it;
        wn_span m, role, content;
        wn_json_items_init(&it, v.p, v.n);
        while (wn_json_items_next(&it, &m)) {
            if (!m.n || m.p[0] != '{' || !wn_json_get(m.p, m.n, "role", &role) || !wn_json_get(m.p, m.n, "content", &content) ||
                !role.n || role.p[0] != '"' || !content.n || content.p[0] != '"')
                return "each message needs string 'role' and 'content'";
            wn_buf rb = {0};
            wn_json_decode_string(role, &rb);
            if (rb.len) rb.p[0] = (char)(rb.p[0] >= 'a' && rb.p[0] <= 'z' ? rb.p[0] - 32 : rb.p[0]);
            wn_buf_append(&r->prompt, rb.p ? rb.p : "", rb.len);
            wn_buf_puts(&r->prompt, ": ");
            wn_json_decode_string(content, &r->prompt);
            wn_buf_putc(&r->prompt, '\n');
            wn_buf_free(&rb);
        }
        wn_buf_puts(&r->prompt, "Assistant:");
    }
    double x;
    int k;
    r->o = (wn_gen_opts){1.0f, 0, 1.0f, 16, -1, 0};
    if ((k = get_num(body, n, "max_tokens", &x)) || (k = get_num(body, n, "max_completion_tokens", &x))) {
        if (k < 0 || x < 1 || x > MAX_NEW_TOKENS || x != (int)x) return "'max_tokens' must be an integer in [1, 4096]";
        r->o.max_tokens = (int)x;
    }
    if ((k = get_num(body, n, "temperature", &x))) {
        if (k < 0 || !(x >= 0 && x <= 100)) return "'temperature' must be a number in [0, 100]";
        r->o.temperature = (float)x;
    }
    if ((k = get_num(body, n, "top_p", &x))) {
        if (k < 0 || !(x > 0 && x <= 1)) return "'top_p' must be a number in (0, 1]";
        r->o.top_p = (float)x;
    }
    if ((k = get_num(body, n, "top_k", &x))) {
        if (k < 0 || x < 0 || x > 1e9 || x != (int)x) return "'top_k' must be a non-negative integer";
        r->o.top_k = (int)x;
    }
    if ((k = get_num(body, n, "n", &x)) && (k < 0 || x != 1)) return "only n = 1 is supported";
    if (wn_json_get(body, n, "seed", &v) && !(v.n == 4 && !memcmp(v.p, "null", 4))) {
        int64_t s;
        if (!wn_json_to_i64(v, &s)) return "'seed' must be an integer";
        r->seed = (uint64_t)s;
    }
    return NULL;
}

/* Generates r's completion under the model lock; the result's text and counts. */
static wn_err generate(server *sv, gen_req *r, wn_buf *text, size_t *n_prompt, size_t *n_out, int *stopped)
{
    wn_tok_ctx *c = wn_tok_ctx_new(sv->tok);
    wn_ids prompt = {0}, out = {0};
    wn_err e = c ? wn_tokenizer_encode(c, r->prompt.p ? r->prompt.p : "", r->prompt.len, 0, &prompt) : WN_ERR_NOMEM;
    if (!e && !prompt.n) e = wn_ids_push(&prompt, sv->eot >= 0 ? (uint32_t)sv->eot : 0);
    r->o.stop_id = sv->eot;
    /* the seed goes through splitmix64 once, so small seeds give unrelated streams */
    uint64_t rng = r->seed ^ 0x7365727665ull;
    wn_splitmix64(&rng);
    if (!e) {
        omp_set_num_threads((int)sv->threads); /* per thread: each connection thread starts from the default */
        pthread_mutex_lock(&sv->model_lock);
        e = wn_gen_run(sv->m, &prompt, 1, 1, &r->o, &rng, &out, NULL);
        pthread_mutex_unlock(&sv->model_lock);
    }
    if (!e) e = wn_tokenizer_decode(sv->tok, out.p, out.n, text);
    *n_prompt = prompt.n;
    *n_out = out.n;
    *stopped = out.n < (size_t)r->o.max_tokens;
    wn_ids_free(&prompt);
    wn_ids_free(&out);
    wn_tok_ctx_free(c);
    return e;
}

static void completion_body(server *sv, wn_buf *out, uint64_t id, int chat, const wn_buf *text, size_t np, size_t nc,
                            int stopped)
{
    wn_jw w;
    wn_buf_clear(out);
    wn_jw_init(&w, out, 0);
    wn_jw_obj_begin(&w);
    char sid[48];
    snprintf(sid, sizeof sid, "%s-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)id);
    wn_jw_key(&w, "id"); wn_jw_str(&w, sid);
    wn_jw_key(&w, "object"); wn_jw_str(&w, chat ? "chat.completion" : "text_completion");
    wn_jw_key(&w, "created"); wn_jw_i64(&w, (int64_t)time(NULL));
    wn_jw_key(&w, "model"); wn_jw_str(&w, sv->name);
    wn_jw_key(&w, "choices");
    wn_jw_arr_begin(&w);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "index"); wn_jw_i64(&w, 0);
    if (chat) {
        wn_jw_key(&w, "message");
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "role"); wn_jw_str(&w, "assistant");
        wn_jw_key(&w, "content"); wn_jw_strn(&w, text->p ? text->p : "", text->len);
        wn_jw_obj_end(&w);
    } else {
        wn_jw_key(&w, "text"); wn_jw_strn(&w, text->p ? text->p : "", text->len);
        wn_jw_key(&w, "logprobs"); wn_jw_null(&w);
    }
    wn_jw_key(&w, "finish_reason"); wn_jw_str(&w, stopped ? "stop" : "length");
    wn_jw_obj_end(&w);
    wn_jw_arr_end(&w);
    wn_jw_key(&w, "usage");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "prompt_tokens"); wn_jw_u64(&w, np);
    wn_jw_key(&w, "completion_tokens"); wn_jw_u64(&w, nc);
    wn_jw_key(&w, "total_tokens"); wn_jw_u64(&w, np + nc);
    wn_jw_obj_end(&w);
    wn_jw_obj_end(&w);
}

/* The answer to one request in out; returns its HTTP status. */
static int handle(server *sv, uint64_t id, const char *method, const char *path, const char *body,
                  size_t n, wn_buf *out, size_t *tokens)
{
    int chat = !strcmp(path, "/v1/chat/completions");
    if (!strcmp(path, "/health") || !strcmp(path, "/v1/models")) {
        if (strcmp(method, "GET")) return error_body(out, "invalid_request_error", "use GET"), 405;
        wn_buf_clear(out);
        if (!strcmp(path, "/health")) wn_buf_puts(out, "{\"status\":\"ok\"}");
        else {
            wn_jw w;
            wn_jw_init(&w, out, 0);
            wn_jw_obj_begin(&w);
            wn_jw_key(&w, "object"); wn_jw_str(&w, "list");
            wn_jw_key(&w, "data");
            wn_jw_arr_begin(&w);
            wn_jw_obj_begin(&w);
            wn_jw_key(&w, "id"); wn_jw_str(&w, sv->name);
            wn_jw_key(&w, "object"); wn_jw_str(&w, "model");
            wn_jw_key(&w, "owned_by"); wn_jw_str(&w, "winnow");
            wn_jw_obj_end(&w);
            wn_jw_arr_end(&w);
            wn_jw_obj_end(&w);
        }
        return 200;
    }
    if (!chat && strcmp(path, "/v1/completions")) return error_body(out, "invalid_request_error", "no such endpoint"), 404;
    if (strcmp(method, "POST")) return error_body(out, "invalid_request_error", "use POST"), 405;
    if (sv->fail_every > 0 && id % (uint64_t)sv->fail_every == 0)
        return error_body(out, "server_error", "injected failure (--fail-every)"), 503;
    gen_req r = {0};
    const char *bad = parse_request(body, n, chat, &r);
    int code = 200;
    if (bad) {
        error_body(out, "invalid_request_error", bad);
        code = 400;
    } else {
        wn_buf text = {0};
        size_t np = 0, nc = 0;
        int stopped = 0;
        wn_err e = generate(sv, &r, &text, &np, &nc, &stopped);
        if (e) {
            error_body(out, "server_error", wn_err_name(e));
            code = 500;
        } else {
            completion_body(sv, out, id, chat, &text, np, nc, stopped);
            *tokens = nc;
        }
        wn_buf_free(&text);
    }
    wn_buf_free(&r.prompt);
    return code;
}

static void *serve_conn(void *arg)
{
    conn *c = arg;
    server *sv = c->sv;
    wn_buf in = {0}, out = {0};
    char method[16], path[256];
    size_t off = 0, len = 0, tokens = 0;
    double t0 = wn_now();
    int code = read_request(c->fd, &in, method, sizeof method, path, sizeof path, &off, &len);
    pthread_mutex_lock(&sv->count_lock);
    uint64_t id = ++sv->requests;
    pthread_mutex_unlock(&sv->count_lock);
    if (code > 0) {
        error_body(&out, "invalid_request_error", status_text(code));
        snprintf(method, sizeof method, "-");
        snprintf(path, sizeof path, "-");
    } else if (code == 0) {
        code = handle(sv, id, method, path, in.p + off, len, &out, &tokens);
        if (sv->delay_ms > 0 && (sv->delay_every <= 0 || id % (uint64_t)sv->delay_every == 0)) {
            struct timespec ts = {sv->delay_ms / 1000, (sv->delay_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) && errno == EINTR) {}
        }
    }
    if (code > 0) {
        respond(c->fd, code, &out);
        fprintf(stderr, "serve: #%llu %s %s %d %zu tokens %.1f ms\n", (unsigned long long)id, method, path, code,
                tokens, (wn_now() - t0) * 1e3);
    }
    close(c->fd);
    wn_buf_free(&in);
    wn_buf_free(&out);
    pthread_mutex_lock(&sv->count_lock);
    sv->conns--;
    pthread_mutex_unlock(&sv->count_lock);
    wn_free(c);
    return NULL;
}

/* ---- the command ------------------------------------------------------------------ */

static int parse_long(const char *s, long lo, long hi, long *v)
{
    char *e;
    long x = strtol(s, &e, 10);
    if (*e || e == s || x < lo || x > hi) return 0;
    *v = x;
    return 1;
}

int wn_cmd_serve(int argc, char **argv)
{
    const char *ckpt = NULL, *tok_path = NULL, *host = "127.0.0.1", *name = NULL, *port_file = NULL;
    long port = 8080, fail_every = 0, delay_ms = 0, delay_every = 0, threads = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage, stdout); return 0; }
        int has = i + 1 < argc;
        if (!strcmp(a, "--tokenizer") && has) tok_path = argv[++i];
        else if (!strcmp(a, "--host") && has) host = argv[++i];
        else if (!strcmp(a, "--model-name") && has) name = argv[++i];
        else if (!strcmp(a, "--port-file") && has) port_file = argv[++i];
        else if (!strcmp(a, "--port") && has) {
            if (!parse_long(argv[++i], 0, 65535, &port)) { fprintf(stderr, "winnow serve: bad --port '%s'\n%s", argv[i], usage); return 2; }
        } else if (!strcmp(a, "--threads") && has) {
            if (!parse_long(argv[++i], 1, 4096, &threads)) { fprintf(stderr, "winnow serve: bad --threads\n%s", usage); return 2; }
        } else if (!strcmp(a, "--fail-every") && has) {
            if (!parse_long(argv[++i], 0, 1000000000, &fail_every)) { fprintf(stderr, "winnow serve: bad --fail-every\n%s", usage); return 2; }
        } else if (!strcmp(a, "--delay-ms") && has) {
            if (!parse_long(argv[++i], 0, 3600000, &delay_ms)) { fprintf(stderr, "winnow serve: bad --delay-ms\n%s", usage); return 2; }
        } else if (!strcmp(a, "--delay-every") && has) {
            if (!parse_long(argv[++i], 0, 1000000000, &delay_every)) { fprintf(stderr, "winnow serve: bad --delay-every\n%s", usage); return 2; }
        } else if (a[0] == '-') {
            fprintf(stderr, "winnow serve: unknown option or missing value '%s'\n%s", a, usage);
            return 2;
        } else if (!ckpt) ckpt = a;
        else { fprintf(stderr, "winnow serve: unexpected argument '%s'\n%s", a, usage); return 2; }
    }
    if (!ckpt || !tok_path) {
        fprintf(stderr, "winnow serve: a CHECKPOINT and --tokenizer are required\n%s", usage);
        return 2;
    }
    server sv = {.fail_every = fail_every, .delay_ms = delay_ms, .delay_every = delay_every, .threads = threads};
    wn_errbuf err = {{0}};
    int rc = 1, fd = -1;
    if (wn_st_gpt_load_file(&sv.m, ckpt, 0, &err) || wn_tokenizer_load(&sv.tok, tok_path, &err)) {
        fprintf(stderr, "winnow serve: %s\n", err.msg);
        goto out;
    }
    if (wn_tokenizer_vocab_size(sv.tok) > wn_gpt_cfg(sv.m)->vocab) {
        fprintf(stderr, "winnow serve: the tokenizer has %d tokens, more than the model's vocabulary of %d\n",
                wn_tokenizer_vocab_size(sv.tok), wn_gpt_cfg(sv.m)->vocab);
        goto out;
    }
    sv.eot = wn_tokenizer_special(sv.tok, "<|endoftext|>");
    const char *slash = strrchr(ckpt, '/');
    sv.name = name ? name : slash ? slash + 1 : ckpt;
    pthread_mutex_init(&sv.model_lock, NULL);
    pthread_mutex_init(&sv.count_lock, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "winnow serve: --host: not an IPv4 address: %s\n", host);
        goto out;
    }
    int one = 1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 128)) {
        fprintf(stderr, "winnow serve: cannot listen on %s:%ld: %s\n", host, port, strerror(errno));
        goto out;
    }
    socklen_t al = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &al);
    port = ntohs(addr.sin_port);
    fprintf(stderr, "serve: %s (%zu parameters) on http://%s:%ld/v1\n", sv.name, wn_gpt_num_params(sv.m), host, port);
    if (port_file) {
        char num[32];
        int n = snprintf(num, sizeof num, "%ld\n", port);
        if (wn_write_atomic(port_file, num, (size_t)n, &err)) {
            fprintf(stderr, "winnow serve: %s\n", err.msg);
            goto out;
        }
    }
    for (;;) {
        int cfd = accept(fd, NULL, NULL);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
            fprintf(stderr, "winnow serve: accept: %s\n", strerror(errno));
            break;
        }
        struct timeval tv = {30, 0}; /* a client that stalls mid-request is dropped */
        setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        pthread_mutex_lock(&sv.count_lock);
        int busy = sv.conns >= MAX_CONN;
        if (!busy) sv.conns++;
        pthread_mutex_unlock(&sv.count_lock);
        conn *c = busy ? NULL : wn_malloc(sizeof *c);
        pthread_t th;
        pthread_attr_t at;
        if (c) {
            *c = (conn){&sv, cfd};
            pthread_attr_init(&at);
            pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
            int bad = pthread_create(&th, &at, serve_conn, c);
            pthread_attr_destroy(&at);
            if (!bad) continue;
            wn_free(c);
            pthread_mutex_lock(&sv.count_lock);
            sv.conns--;
            pthread_mutex_unlock(&sv.count_lock);
        }
        wn_buf body = {0};
        error_body(&body, "server_error", "too many connections");
        respond(cfd, 503, &body);
        wn_buf_free(&body);
        close(cfd);
    }
out:
    if (fd >= 0) close(fd);
    wn_tokenizer_free(sv.tok);
    wn_gpt_free(sv.m);
    return rc;
}
