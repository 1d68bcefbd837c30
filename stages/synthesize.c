/*
 * synthesize.c - adds generated documents to the stream, with provenance, so
 * that they pass through the same dedup, filters, scoring and selection as
 * real ones (docs/synthesis.md).
 *
 * Modes:
 *   template  documents expanded from a template file (src/synth_template.h):
 *             word lists, integer ranges, arithmetic, weighted grammars,
 *             fields of the source document.
 *   model     a prompt is expanded from a prompt template (the same format;
 *             a built-in set rephrases, continues, summarises or asks a
 *             question about the source document), tokenized, and continued
 *             by a winnow GPT checkpoint on the CPU (src/generate.h: batched,
 *             temperature / top-k / top-p, max_tokens, stopping at the
 *             end-of-text token); the completion, decoded and made valid
 *             UTF-8, is the document. With device: cuda (or auto and a
 *             GPU) the forwards run on the GPU (src/gpt_cuda.h) and the
 *             picks on the host; the text can differ from the CPU's where
 *             a draw falls near a tie, and is the same run to run.
 *   endpoint  the same prompts sent to an OpenAI-compatible completions or
 *             chat endpoint (src/completions.h: libcurl, a concurrency limit,
 *             retries with backoff, timeouts, a response cache on disk keyed
 *             by a hash of the request, so a resumed run does not pay twice).
 *
 * Ratio. Each source document gets floor(per_doc) generations plus one more
 * with probability frac(per_doc), decided by a hash of (seed, id), so the
 * decision belongs to the document whatever the batching. max_total caps
 * the documents generated over the whole stream, taken in stream order: a
 * generation after the max_total-th is capped, failing or not, so the
 * counts do not depend on where batches end. Across MPI ranks with
 * max_total, each rank generates under the cap by itself and holds its
 * documents back; finish's first call learns by an exscan (8 bytes a rank)
 * how many the earlier ranks generated and drops the generations past the
 * stream's cap (syn_finish). Without max_total it streams. report() sums
 * the counters over the ranks.
 *
 * Determinism. Generation k of source d draws from a splitmix64 stream
 * seeded by xxh3(k; xxh3(id, seed)): a function of the document alone, so
 * the output is the same for any thread count, and a resumed run (which
 * reprocesses whole batches from a checkpoint) regenerates the same text.
 * Generated documents follow their source in the output, in k order.
 *
 * In model mode the prompt's draws and then the sampling continue that one
 * stream, and prompts are continued `batch` at a time in job order within the
 * batch of documents, which is fixed by the manifest.
 *
 * Provenance. A generated document has the id "<source id>#synth-<k>", no
 * input fields of its own, and the attributes
 *   "synthetic": true,
 *   "synth": {"mode": ..., "template" (template mode) or "prompt" (model),
 *             "source": <source id>, "index": k, "seed": <the stage's seed>,
 *             model mode: "model": <checkpoint path>, "tokens": <generated>}
 * written under the record's "winnow" object.
 *
 * Failures. An expansion that fails (a missing field, a division by zero,
 * ...) generates nothing and is counted per reason, with the first message
 * of each reason in the report; on_failure: fail stops the run instead.
 *
 * Resume: the counters (and with them the cap's progress) are checkpointed;
 * endpoint mode's cache lives outside the state directory
 * (RUN_DIR/cache/NN-synthesize by default), so it outlives the run.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../kernels/device.h"
#include "../src/completions.h"
#include "../src/docspill.h"
#include "../src/fs.h"
#include "../src/generate.h"
#include "../src/json.h"
#include "../src/model.h"
#include "../src/mpi.h"
#include "../src/safetensors.h"
#include "../src/stage.h"
#include "../src/synth_template.h"
#include "../src/text.h"
#include "../src/tokenizer.h"

static const wn_param_def params[] = {
    {"mode", WN_P_ENUM, "template", 0, 0, "template|model|endpoint", "how documents are generated (see docs/synthesis.md)"},
    {"templates", WN_P_STRING, "", 0, 0, NULL, "template mode: the template file"},
    {"prompts", WN_P_STRING, "", 0, 0, NULL,
     "model and endpoint modes: a template file whose templates are prompts (empty = the built-in rephrase, continue, "
     "summarize, qa; pipelines/synth/prompts.tmpl is a copy)"},
    {"use", WN_P_STRING, "", 0, 0, NULL,
     "comma-separated template (or prompt) names to pick from, by weight (empty = every one of the file)"},
    {"model", WN_P_STRING, "", 0, 0, NULL,
     "model mode: a GPT checkpoint (.safetensors, winnow's or HF GPT-2's); endpoint mode: the model name sent"},
    {"tokenizer", WN_P_STRING, "", 0, 0, NULL, "model mode: the model's tokenizer (tokenizer.json or a GPT-2 directory)"},
    {"temperature", WN_P_FLOAT, "0.8", 0, 100, NULL, "model and endpoint modes: sampling temperature (0 = greedy)"},
    {"top_k", WN_P_INT, "0", 0, 1e9, NULL,
     "model and endpoint modes: sample among the k most likely tokens (0 = all; endpoint: not sent when 0)"},
    {"top_p", WN_P_FLOAT, "0.95", 0, 1, NULL, "model and endpoint modes: nucleus sampling mass (1 = off)"},
    {"max_tokens", WN_P_INT, "64", 1, 1e6, NULL, "model and endpoint modes: most tokens generated per document"},
    {"batch", WN_P_INT, "8", 1, 4096, NULL, "model mode: sequences per forward pass"},
    {"include_prompt", WN_P_BOOL, "false", 0, 0, NULL,
     "model and endpoint modes: the document is the prompt + completion"},
    {"url", WN_P_STRING, "", 0, 0, NULL, "endpoint mode: the endpoint, e.g. http://127.0.0.1:8080/v1/completions"},
    {"api", WN_P_ENUM, "completions", 0, 0, "completions|chat",
     "endpoint mode: request and response shapes of /v1/completions or /v1/chat/completions"},
    {"api_key_env", WN_P_STRING, "", 0, 0, NULL,
     "endpoint mode: the environment variable holding the API key (sent as a Bearer token; never stored)"},
    {"concurrency", WN_P_INT, "4", 1, 1024, NULL, "endpoint mode: requests in flight at once"},
    {"retries", WN_P_INT, "4", 0, 100, NULL, "endpoint mode: retries of a failed request (backoff doubles each time)"},
    {"backoff_ms", WN_P_INT, "500", 0, 600000, NULL, "endpoint mode: delay before the first retry"},
    {"timeout_ms", WN_P_INT, "60000", 1, 3600000, NULL, "endpoint mode: time limit of one request"},
    {"cache", WN_P_STRING, "", 0, 0, NULL,
     "endpoint mode: response cache directory (empty = RUN_DIR/cache/NN-synthesize; none = no cache)"},
    {"per_doc", WN_P_FLOAT, "1", 0, 1000, NULL,
     "generated documents per source document; a fraction is drawn per document (0.25 = one in four)"},
    {"max_total", WN_P_SIZE, "0", 0, 9e18, NULL, "at most this many generated documents in all (0 = no cap)"},
    {"keep_source", WN_P_BOOL, "true", 0, 0, NULL, "pass the source documents on (false: only generated ones)"},
    {"seed", WN_P_INT, "0", 0, 9e18, NULL, "seed of every draw"},
    {"max_bytes", WN_P_SIZE, "1MiB", 16, 1e9, NULL, "largest generated document; longer ones fail as too_long"},
    {"on_failure", WN_P_ENUM, "skip", 0, 0, "skip|fail", "a generation that fails: count it and go on, or stop"},
};

enum { MODE_TEMPLATE, MODE_MODEL, MODE_ENDPOINT };
static const char *const mode_names[] = {"template", "model", "endpoint"};

/* The prompts of model mode when none are given (pipelines/synth/prompts.tmpl
 * is a copy, checked by tests/e2e/test_synthesize.sh). */
static const char builtin_prompts[] =
    "template rephrase:\n"
    "  Rewrite the following text in {(plain|simple|formal)} English.\n"
    "\n"
    "  Text: {doc.text|words 120}\n"
    "\n"
    "  Rewritten:\n"
    "template continue:\n"
    "  {doc.text|words 120}\n"
    "template summarize:\n"
    "  {doc.text|words 200}\n"
    "\n"
    "  In summary,\n"
    "template qa:\n"
    "  {doc.text|words 150}\n"
    "\n"
    "  Question: {(What is this text about|What is the main point of this text|Who would find this text useful)}?\n"
    "  Answer:\n";

/* Failure reasons, in report order: synth_template.h's five; empty (the
 * model ended the text before any token); completions.h's causes of a request
 * given up on. */
static const char *const reasons[] = {"missing_field", "arithmetic", "unbound",  "too_long", "too_deep",
                                      "empty",         "timeout",    "connect",  "transport", "http_5xx",
                                      "http_429",      "http_4xx",   "bad_response", "error"};
enum { N_REASONS = WN_ARRAY_LEN(reasons), MSG_LEN = 240 };

/* What the report counts, checkpointed as one block. */
typedef struct {
    uint64_t sources, planned, generated, capped, failed, bytes;
    uint64_t tokens, prompt_tokens, forward_tokens;
    /* endpoint mode: attempts sent, failed attempts, retries, timeouts, cache hits */
    uint64_t requests, request_failures, retries, timeouts, cache_hits;
    uint64_t fail_by[N_REASONS];
    double seconds, request_seconds, flops;
    char first_msg[N_REASONS][MSG_LEN];
} counters;

/* Across ranks with max_total (see syn_finish): what a generation this rank
 * accepted, or a failure it counted, adds to the counters, so either can be
 * taken back once the earlier ranks' generations are known. */
typedef struct {
    int32_t tmpl;
    uint32_t tokens;
} held_ok;
typedef struct {
    uint64_t before; /* generations this rank accepted before it */
    int32_t reason;
    uint32_t pad;
} held_fail;

/* One generation: source document src of the batch, its k-th. */
typedef struct {
    uint32_t src, k;
    int32_t tmpl;     /* template (or prompt) expanded */
    uint32_t tokens;  /* model mode: tokens generated */
    int8_t reason;    /* -1 = ok, else index into reasons */
    uint8_t accepted;
    char msg[MSG_LEN];
} job;

typedef struct {
    int mode, keep_source, fail;
    double per_doc;
    uint64_t max_total, seed, max_bytes;
    const char *templates, *model_path;
    wn_tmpl *tmpl;      /* the templates, or model mode's prompts */
    wn_tmpl_ctx **ctx;
    wn_errbuf *terr;
    int n_ctx;
    wn_buf mode_json;   /* "\"template\"" */
    /* the current batch's generations */
    job *jobs;
    size_t n_jobs, cap_jobs;
    wn_batch gen;       /* gen.docs[j] = the document of jobs[j] */
    /* model mode */
    wn_gpt *m;
    wn_gpt_cuda *gpu; /* model mode on the GPU (device: cuda, or auto with one), else NULL */
    wn_tokenizer *tok;
    wn_tok_ctx **tctx;
    wn_gen_opts gen_opts;
    int batch, include_prompt;
    wn_ids *pids, *outs;  /* per job: prompt ids; per generated sequence: its ids */
    uint64_t *rngs;       /* per job: the stream after the prompt's draws */
    wn_ids *gp;           /* the jobs to continue, compacted (shallow copies of pids) */
    uint64_t *grng;
    size_t *gjob;
    size_t cap_model;
    wn_buf dec;
    /* endpoint mode */
    wn_cc_opts cc;
    const char *url;
    wn_buf cache_dir, api_key;
    wn_cc_req *reqs;
    size_t cap_reqs;
    counters c;         /* checkpointed */
    uint64_t *by_tmpl;  /* generated per template (checkpointed) */
    /* across ranks with max_total: the documents held back until the cap's
     * progress on the earlier ranks is known (all checkpointed) */
    int hold;
    wn_spill_writer sw;
    wn_spill_reader sr;
    char spill_path[4200];
    uint64_t n_spilled, n_emitted, gen_seen, allowed;
    uint64_t *is_gen;   /* bit per spilled document: a generated one */
    size_t cap_gen;     /* words */
    held_ok *acc;       /* this rank's accepted generations, in stream order */
    size_t n_acc, cap_acc;
    held_fail *fails;   /* its counted failures, in stream order */
    size_t n_fails, cap_fails;
    int phase;          /* finish: 0 not begun, 1 emitting, 2 done */
} synth;

/* ---- open / close ------------------------------------------------------------ */

/* Model mode: the checkpoint, the tokenizer and the prompts. */
static wn_err open_model(wn_stage *st, synth *s)
{
    const char *tok = wn_param(st, "tokenizer")->s, *prompts = wn_param(st, "prompts")->s;
    s->model_path = wn_param(st, "model")->s;
    if (!s->model_path[0] || !tok[0])
        return wn_fail(&st->err, WN_ERR_MANIFEST, "mode model needs model (a .safetensors checkpoint) and tokenizer");
    if (s->templates[0])
        return wn_fail(&st->err, WN_ERR_MANIFEST, "templates is for mode template; mode model takes prompts");
    wn_err e = prompts[0] ? wn_tmpl_load(&s->tmpl, prompts, &st->err)
                          : wn_tmpl_parse(&s->tmpl, builtin_prompts, sizeof builtin_prompts - 1, "built-in prompts", 0,
                                          &st->err);
    if (e) return e == WN_ERR_INPUT ? WN_ERR_MANIFEST : e;
    if ((e = wn_st_gpt_load_file(&s->m, s->model_path, 0, &st->err))) return e;
    if ((e = wn_tokenizer_load(&s->tok, tok, &st->err))) return e;
    /* device: cuda runs the model on the GPU (an error without one); auto does when one is visible */
    const char *dev = st->run && st->run->device ? st->run->device : "auto";
    if (!strcmp(dev, "cuda") || (!strcmp(dev, "auto") && wn_cuda_device_count() > 0)) {
        if (!wn_cuda_built() || wn_cuda_device_count() < 1)
            return wn_fail(&st->err, WN_ERR_MANIFEST, "synthesize: device: cuda, but %s",
                           wn_cuda_built() ? "no CUDA device is visible" : "this winnow was built without CUDA");
        if ((e = wn_gpt_cuda_new(&s->gpu, s->m, 0, &st->err))) return e;
        snprintf(st->device_used, sizeof st->device_used, "cuda");
    }
    int tv = wn_tokenizer_vocab_size(s->tok), mv = wn_gpt_cfg(s->m)->vocab;
    if (tv > mv)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "tokenizer %s has %d tokens, more than the model's vocabulary of %d",
                       tok, tv, mv);
    s->gen_opts.temperature = (float)wn_param(st, "temperature")->f;
    s->gen_opts.top_k = (int)wn_param(st, "top_k")->i;
    s->gen_opts.top_p = (float)wn_param(st, "top_p")->f;
    s->gen_opts.max_tokens = (int)wn_param(st, "max_tokens")->i;
    s->gen_opts.stop_id = wn_tokenizer_special(s->tok, "<|endoftext|>");
    s->batch = (int)wn_param(st, "batch")->i;
    s->include_prompt = wn_param(st, "include_prompt")->b;
    s->tctx = wn_calloc((size_t)s->n_ctx, sizeof *s->tctx);
    if (!s->tctx) return WN_ERR_NOMEM;
    for (int i = 0; i < s->n_ctx; i++)
        if (!(s->tctx[i] = wn_tok_ctx_new(s->tok))) return WN_ERR_NOMEM;
    return WN_OK;
}

/* Endpoint mode: the client's options, the prompts, the cache directory. */
static wn_err open_endpoint(wn_stage *st, synth *s)
{
    const char *prompts = wn_param(st, "prompts")->s, *cache = wn_param(st, "cache")->s;
    const char *key_env = wn_param(st, "api_key_env")->s;
    s->url = wn_param(st, "url")->s;
    if (!s->url[0]) return wn_fail(&st->err, WN_ERR_MANIFEST, "mode endpoint needs url (e.g. http://127.0.0.1:8080/v1/completions)");
    if (s->templates[0])
        return wn_fail(&st->err, WN_ERR_MANIFEST, "templates is for mode template; mode endpoint takes prompts");
    wn_err e = prompts[0] ? wn_tmpl_load(&s->tmpl, prompts, &st->err)
                          : wn_tmpl_parse(&s->tmpl, builtin_prompts, sizeof builtin_prompts - 1, "built-in prompts", 0,
                                          &st->err);
    if (e) return e == WN_ERR_INPUT ? WN_ERR_MANIFEST : e;
    if ((e = wn_cc_global_init(&st->err))) return e;
    if (key_env[0]) {
        const char *k = getenv(key_env);
        if (!k || !k[0]) return wn_fail(&st->err, WN_ERR_MANIFEST, "api_key_env: the environment variable %s is not set", key_env);
        if (wn_buf_puts(&s->api_key, k)) return WN_ERR_NOMEM;
    }
    if (!strcmp(cache, "none")) {
        /* no cache */
    } else if (cache[0]) {
        if (wn_buf_puts(&s->cache_dir, cache)) return WN_ERR_NOMEM;
    } else if (st->run && st->run->run_dir) {
        if (wn_buf_printf(&s->cache_dir, "%s/cache/%02d-synthesize", st->run->run_dir, st->index)) return WN_ERR_NOMEM;
    }
    if (s->cache_dir.len && (e = wn_mkdir_p(s->cache_dir.p, &st->err))) return e;
    s->model_path = wn_param(st, "model")->s;
    s->cc = (wn_cc_opts){
        .url = s->url,
        .chat = !strcmp(wn_param(st, "api")->s, "chat"),
        .model = s->model_path,
        .api_key = s->api_key.len ? s->api_key.p : NULL,
        .concurrency = (int)wn_param(st, "concurrency")->i,
        .retries = (int)wn_param(st, "retries")->i,
        .timeout_ms = (long)wn_param(st, "timeout_ms")->i,
        .connect_timeout_ms = (long)wn_param(st, "timeout_ms")->i,
        .backoff_ms = (long)wn_param(st, "backoff_ms")->i,
        .cache_dir = s->cache_dir.len ? s->cache_dir.p : NULL,
        .temperature = wn_param(st, "temperature")->f,
        .top_p = wn_param(st, "top_p")->f,
        .top_k = (int)wn_param(st, "top_k")->i,
        .max_tokens = (int)wn_param(st, "max_tokens")->i,
    };
    s->include_prompt = wn_param(st, "include_prompt")->b;
    return WN_OK;
}

static wn_err syn_open(wn_stage *st)
{
    synth *s = st->state;
    const char *mode = wn_param(st, "mode")->s;
    s->mode = !strcmp(mode, "model") ? MODE_MODEL : !strcmp(mode, "endpoint") ? MODE_ENDPOINT : MODE_TEMPLATE;
    s->templates = wn_param(st, "templates")->s;
    s->per_doc = wn_param(st, "per_doc")->f;
    s->max_total = (uint64_t)wn_param(st, "max_total")->i;
    s->keep_source = wn_param(st, "keep_source")->b;
    s->seed = (uint64_t)wn_param(st, "seed")->i;
    s->max_bytes = (uint64_t)wn_param(st, "max_bytes")->i;
    s->fail = !strcmp(wn_param(st, "on_failure")->s, "fail");
    if (st->run && st->run->vocab_size > 0)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "place synthesize before tokenize: generated documents carry "
                       "no tokens");
    s->n_ctx = st->threads > 0 ? st->threads : 1;
    wn_err e;
    if (s->mode == MODE_MODEL) {
        if ((e = open_model(st, s))) return e;
    } else if (s->mode == MODE_ENDPOINT) {
        if ((e = open_endpoint(st, s))) return e;
    } else {
        if (!s->templates[0])
            return wn_fail(&st->err, WN_ERR_MANIFEST, "mode template needs templates: a template file (docs/synthesis.md)");
        e = wn_tmpl_load(&s->tmpl, s->templates, &st->err);
        if (e == WN_ERR_INPUT) return WN_ERR_MANIFEST; /* a bad template file is a configuration error */
        if (e) return e;
    }
    if ((e = wn_tmpl_restrict(s->tmpl, wn_param(st, "use")->s, &st->err))) return e;
    s->ctx = wn_calloc((size_t)s->n_ctx, sizeof *s->ctx);
    s->terr = wn_calloc((size_t)s->n_ctx, sizeof *s->terr);
    s->by_tmpl = wn_calloc((size_t)wn_tmpl_count(s->tmpl), sizeof *s->by_tmpl);
    if (!s->ctx || !s->terr || !s->by_tmpl) return WN_ERR_NOMEM;
    for (int i = 0; i < s->n_ctx; i++) {
        if (!(s->ctx[i] = wn_tmpl_ctx_new(s->tmpl))) return WN_ERR_NOMEM;
        wn_tmpl_ctx_limit(s->ctx[i], (size_t)s->max_bytes);
    }
    if (wn_json_encode_string(&s->mode_json, mode_names[s->mode], strlen(mode_names[s->mode]))) return WN_ERR_NOMEM;
    s->hold = s->max_total && wn_mpi_size() > 1;
    snprintf(s->spill_path, sizeof s->spill_path, "%s/held.spill.zst", st->state_dir ? st->state_dir : ".");
    return WN_OK;
}

static void syn_close(wn_stage *st)
{
    synth *s = st->state;
    for (int i = 0; s->ctx && i < s->n_ctx; i++) wn_tmpl_ctx_free(s->ctx[i]);
    wn_free(s->ctx);
    wn_free(s->terr);
    wn_free(s->by_tmpl);
    wn_tmpl_free(s->tmpl);
    wn_free(s->jobs);
    wn_batch_free(&s->gen);
    wn_buf_free(&s->mode_json);
    for (int i = 0; s->tctx && i < s->n_ctx; i++) wn_tok_ctx_free(s->tctx[i]);
    wn_free(s->tctx);
    for (size_t i = 0; i < s->cap_model; i++) {
        wn_ids_free(&s->pids[i]);
        wn_ids_free(&s->outs[i]);
    }
    wn_free(s->pids);
    wn_free(s->outs);
    wn_free(s->rngs);
    wn_free(s->gp);
    wn_free(s->grng);
    wn_free(s->gjob);
    wn_buf_free(&s->dec);
    wn_tokenizer_free(s->tok);
    wn_gpt_cuda_free(s->gpu);
    wn_gpt_free(s->m);
    for (size_t i = 0; i < s->cap_reqs; i++) wn_buf_free(&s->reqs[i].text);
    wn_free(s->reqs);
    wn_buf_free(&s->cache_dir);
    wn_buf_free(&s->api_key);
    wn_spill_writer_close(&s->sw); /* an interrupted run: the spill stays for resume */
    wn_spill_reader_close(&s->sr);
    wn_free(s->is_gen);
    wn_free(s->acc);
    wn_free(s->fails);
}

/* ---- planning ---------------------------------------------------------------- */

/* Generations for document d: floor(per_doc), plus one with probability
 * frac(per_doc) by a hash of (seed, id). */
static uint32_t plan_count(const synth *s, const wn_doc *d)
{
    double whole = floor(s->per_doc), frac = s->per_doc - whole;
    uint32_t n = (uint32_t)whole;
    if (frac > 0) {
        uint64_t h = XXH3_64bits_withSeed(d->id.p ? d->id.p : "", d->id.len, s->seed ^ 0x73796e74682d7261ull);
        n += (double)(h >> 11) * 0x1p-53 < frac;
    }
    return n;
}

/* The seed of generation k of document d. */
static uint64_t gen_seed(const synth *s, const wn_doc *d, uint32_t k)
{
    uint64_t h = XXH3_64bits_withSeed(d->id.p ? d->id.p : "", d->id.len, s->seed ^ 0x73796e74682d6b73ull);
    uint64_t kk = k;
    return XXH3_64bits_withSeed(&kk, sizeof kk, h);
}

static wn_err plan(wn_stage *st, synth *s, const wn_batch *b)
{
    s->n_jobs = 0;
    wn_batch_reset(&s->gen);
    int full = s->max_total && s->c.generated >= s->max_total;
    for (size_t i = 0; i < b->n; i++) {
        s->c.sources++;
        uint32_t n = plan_count(s, &b->docs[i]);
        s->c.planned += n;
        if (full) { /* the cap is reached: nothing more is generated */
            s->c.capped += n;
            continue;
        }
        for (uint32_t k = 0; k < n; k++) {
            if (s->n_jobs == s->cap_jobs) {
                size_t cap = s->cap_jobs ? s->cap_jobs * 2 : 256;
                job *j = wn_realloc(s->jobs, cap * sizeof *j);
                if (!j) return WN_ERR_NOMEM;
                s->jobs = j;
                s->cap_jobs = cap;
            }
            job *j = &s->jobs[s->n_jobs++];
            j->src = (uint32_t)i;
            j->k = k;
            j->tmpl = -1;
            j->tokens = 0;
            j->reason = -1;
            j->accepted = 0;
            j->msg[0] = 0;
            if (!wn_batch_push(&s->gen)) return WN_ERR_NOMEM;
        }
    }
    return WN_OK;
}

static int8_t reason_index(const char *why)
{
    for (int i = 0; i < N_REASONS; i++)
        if (why && !strcmp(why, reasons[i])) return (int8_t)i;
    return N_REASONS - 1;
}

/* ---- template mode ------------------------------------------------------------ */

/* Expands job j's template for its document into out, on thread t's
 * context; *rng is left where the expansion's draws ended. A template
 * failure is recorded in the job; the return value is a hard error. */
static wn_err expand_job(synth *s, int t, const wn_batch *b, size_t j, wn_buf *out, uint64_t *rng)
{
    job *jb = &s->jobs[j];
    const wn_doc *d = &b->docs[jb->src];
    wn_tmpl_doc td = {{d->id.p ? d->id.p : "", d->id.len},
                      {d->text.p ? d->text.p : "", d->text.len},
                      {d->raw.p ? d->raw.p : "", d->raw.len}};
    *rng = gen_seed(s, d, jb->k);
    const char *why;
    int picked = -1;
    wn_err e = wn_tmpl_expand(s->tmpl, s->ctx[t], -1, &td, rng, out, &picked, &why, &s->terr[t]);
    jb->tmpl = picked;
    if (e == WN_ERR_INPUT) {
        jb->reason = reason_index(why);
        snprintf(jb->msg, sizeof jb->msg, "%.*s", MSG_LEN - 1, s->terr[t].msg);
        return WN_OK;
    }
    return e;
}

/* Template mode: every job of the batch expanded, in parallel; a job's text
 * depends on its document and k alone. */
static wn_err run_templates(wn_stage *st, synth *s, const wn_batch *b)
{
    wn_err hard = WN_OK;
#pragma omp parallel for schedule(dynamic, 16) num_threads(s->n_ctx)
    for (size_t j = 0; j < s->n_jobs; j++) {
        uint64_t rng;
        wn_err e = expand_job(s, omp_get_thread_num(), b, j, &s->gen.docs[j].text, &rng);
        if (e) {
#pragma omp critical(synth_hard)
            hard = e;
        }
    }
    return hard;
}

/* ---- model mode ---------------------------------------------------------------- */

static wn_err model_reserve(synth *s, size_t n)
{
    if (n <= s->cap_model) return WN_OK;
    size_t cap = s->cap_model ? s->cap_model : 64;
    while (cap < n) cap *= 2;
    wn_ids *p = wn_realloc(s->pids, cap * sizeof *p);
    if (p) s->pids = p;
    wn_ids *o = wn_realloc(s->outs, cap * sizeof *o);
    if (o) s->outs = o;
    if (!p || !o) return WN_ERR_NOMEM;
    memset(s->pids + s->cap_model, 0, (cap - s->cap_model) * sizeof *p);
    memset(s->outs + s->cap_model, 0, (cap - s->cap_model) * sizeof *o);
    s->cap_model = cap;
    uint64_t *r = wn_realloc(s->rngs, cap * sizeof *r);
    if (r) s->rngs = r;
    uint64_t *gr = wn_realloc(s->grng, cap * sizeof *gr);
    if (gr) s->grng = gr;
    wn_ids *gp = wn_realloc(s->gp, cap * sizeof *gp);
    if (gp) s->gp = gp;
    size_t *gj = wn_realloc(s->gjob, cap * sizeof *gj);
    if (gj) s->gjob = gj;
    return r && gr && gp && gj ? WN_OK : WN_ERR_NOMEM;
}

/* Appends p[0..n) to out with every invalid UTF-8 sequence (a byte-level
 * token can end inside a character) replaced by U+FFFD. */
static wn_err put_utf8(wn_buf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t s = i;
        int32_t c = wn_utf8_next(p, n, &i);
        wn_err e = c < 0 ? wn_buf_puts(out, "\xEF\xBF\xBD") : wn_buf_append(out, p + s, i - s);
        if (e) return e;
    }
    return WN_OK;
}

/* Model mode: prompts expanded and tokenized in parallel (the prompt text
 * is kept in the job's document), continued in groups of `batch`, decoded. */
static wn_err run_model(wn_stage *st, synth *s, const wn_batch *b)
{
    wn_err hard = model_reserve(s, s->n_jobs);
    if (hard) return hard;
#pragma omp parallel for schedule(dynamic, 4) num_threads(s->n_ctx)
    for (size_t j = 0; j < s->n_jobs; j++) {
        int t = omp_get_thread_num();
        wn_buf *text = &s->gen.docs[j].text;
        wn_ids *ids = &s->pids[j];
        ids->n = 0;
        wn_err e = expand_job(s, t, b, j, text, &s->rngs[j]);
        if (!e && s->jobs[j].reason < 0) {
            e = wn_tokenizer_encode(s->tctx[t], text->p ? text->p : "", text->len, 0, ids);
            if (!e && !ids->n) e = wn_ids_push(ids, s->gen_opts.stop_id >= 0 ? (uint32_t)s->gen_opts.stop_id : 0);
        }
        if (e) {
#pragma omp critical(synth_hard)
            hard = e;
        }
    }
    if (hard) return hard;
    size_t n = 0;
    for (size_t j = 0; j < s->n_jobs; j++)
        if (s->jobs[j].reason < 0) {
            s->gp[n] = s->pids[j];
            s->grng[n] = s->rngs[j];
            s->gjob[n++] = j;
            s->c.prompt_tokens += s->pids[j].n;
        }
    uint64_t ft = 0;
    wn_errbuf gerr;
    wn_err e = wn_gen_run_on(s->m, s->gpu, s->gp, n, s->batch, &s->gen_opts, s->grng, s->outs, &ft, &gerr);
    s->c.forward_tokens += ft;
    st->flops += 2.0 * (double)wn_gpt_num_params(s->m) * (double)ft; /* a forward: about 2 N per token */
    if (e) return wn_fail(&st->err, e, "generation failed (%s)", gerr.msg[0] ? gerr.msg : wn_err_name(e));
    for (size_t k = 0; k < n; k++) {
        job *jb = &s->jobs[s->gjob[k]];
        wn_buf *text = &s->gen.docs[s->gjob[k]].text;
        jb->tokens = (uint32_t)s->outs[k].n;
        if (!jb->tokens) {
            jb->reason = reason_index("empty");
            snprintf(jb->msg, sizeof jb->msg, "the model ended the text right after the prompt");
            continue;
        }
        wn_buf_clear(&s->dec);
        if ((e = wn_tokenizer_decode(s->tok, s->outs[k].p, s->outs[k].n, &s->dec))) return e;
        if (!s->include_prompt) wn_buf_clear(text);
        if ((e = put_utf8(text, s->dec.p ? s->dec.p : "", s->dec.len))) return e;
    }
    return WN_OK;
}

/* ---- endpoint mode -------------------------------------------------------------- */

/* Endpoint mode: prompts expanded in parallel (kept in the job's document),
 * sent through the client (cache, concurrency, retries), answers in job
 * order. A request's seed is the generation's stream after the prompt's
 * draws, 53 bits (exact in any JSON reader). */
static wn_err run_endpoint(wn_stage *st, synth *s, const wn_batch *b)
{
    wn_err hard = model_reserve(s, s->n_jobs);
    if (hard) return hard;
    if (s->n_jobs > s->cap_reqs) {
        size_t cap = s->n_jobs * 2;
        wn_cc_req *r = wn_realloc(s->reqs, cap * sizeof *r);
        if (!r) return WN_ERR_NOMEM;
        memset(r + s->cap_reqs, 0, (cap - s->cap_reqs) * sizeof *r);
        s->reqs = r;
        s->cap_reqs = cap;
    }
#pragma omp parallel for schedule(dynamic, 16) num_threads(s->n_ctx)
    for (size_t j = 0; j < s->n_jobs; j++) {
        wn_err e = expand_job(s, omp_get_thread_num(), b, j, &s->gen.docs[j].text, &s->rngs[j]);
        if (e) {
#pragma omp critical(synth_hard)
            hard = e;
        }
    }
    if (hard) return hard;
    size_t n = 0;
    for (size_t j = 0; j < s->n_jobs; j++) {
        if (s->jobs[j].reason >= 0) continue;
        wn_cc_req *r = &s->reqs[n];
        const wn_buf *p = &s->gen.docs[j].text;
        r->prompt = p->p ? p->p : "";
        r->prompt_len = p->len;
        r->seed = wn_splitmix64(&s->rngs[j]) >> 11;
        s->gjob[n++] = j;
    }
    wn_cc_stats cs = {0};
    wn_err e = wn_cc_run(&s->cc, s->reqs, n, &cs, &st->err);
    s->c.requests += cs.requests;
    s->c.request_failures += cs.failures;
    s->c.retries += cs.retries;
    s->c.timeouts += cs.timeouts;
    s->c.cache_hits += cs.cache_hits;
    s->c.request_seconds += cs.seconds;
    if (e) return e;
    for (size_t k = 0; k < n; k++) {
        job *jb = &s->jobs[s->gjob[k]];
        wn_cc_req *r = &s->reqs[k];
        wn_buf *text = &s->gen.docs[s->gjob[k]].text;
        if (!r->ok) {
            jb->reason = reason_index(r->why);
            snprintf(jb->msg, sizeof jb->msg, "%s: %.150s (after %d attempt%s)", s->url, r->error, r->attempts,
                     r->attempts == 1 ? "" : "s");
            continue;
        }
        if (!r->text.len) {
            jb->reason = reason_index("empty");
            snprintf(jb->msg, sizeof jb->msg, "%s: an empty completion", s->url);
            continue;
        }
        jb->tokens = r->tokens;
        if (!s->include_prompt) wn_buf_clear(text);
        if ((e = put_utf8(text, r->text.p, r->text.len))) return e;
    }
    return WN_OK;
}

/* ---- the batch --------------------------------------------------------------- */

/* Fills in a generated document's id, attributes and origin. */
static wn_err finish_doc(synth *s, const wn_doc *src, const job *jb, wn_doc *g)
{
    wn_buf *a = &g->attrs;
    wn_buf_clear(&g->id);
    wn_buf_clear(a);
    if (wn_buf_append(&g->id, src->id.p ? src->id.p : "", src->id.len) || wn_buf_printf(&g->id, "#synth-%u", jb->k))
        return WN_ERR_NOMEM;
    wn_err e = wn_buf_puts(a, "\"synthetic\":true,\"synth\":{\"mode\":");
    if (!e) e = wn_buf_append(a, s->mode_json.p, s->mode_json.len);
    if (!e && jb->tmpl >= 0) {
        const char *name = wn_tmpl_name(s->tmpl, jb->tmpl);
        if (!(e = wn_buf_puts(a, s->mode == MODE_TEMPLATE ? ",\"template\":" : ",\"prompt\":")))
            e = wn_json_encode_string(a, name, strlen(name));
    }
    if (!e) e = wn_buf_puts(a, ",\"source\":");
    if (!e) e = wn_json_encode_string(a, src->id.p ? src->id.p : "", src->id.len);
    if (!e) e = wn_buf_printf(a, ",\"index\":%u,\"seed\":%llu", jb->k, (unsigned long long)s->seed);
    if (!e && s->mode == MODE_ENDPOINT) {
        if (!(e = wn_buf_puts(a, ",\"endpoint\":"))) e = wn_json_encode_string(a, s->url, strlen(s->url));
    }
    if (!e && s->mode != MODE_TEMPLATE) {
        if (s->model_path[0] && !(e = wn_buf_puts(a, ",\"model\":")))
            e = wn_json_encode_string(a, s->model_path, strlen(s->model_path));
        if (!e) e = wn_buf_printf(a, ",\"tokens\":%u", jb->tokens);
    }
    if (!e) e = wn_buf_putc(a, '}');
    if (e) return e;
    g->file = src->file;
    g->record = src->record;
    g->raw_text = 0;
    g->dirty = 0;
    g->has_tokens = 0;
    g->drop = NULL;
    return WN_OK;
}

/* Grows an array of n_items to hold one more (cap in items). */
static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 256;
    void *q = wn_realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Counts the jobs in order, applies the cap, and stops on a failure when
 * asked to. Returns the number accepted. The cap comes first: a generation
 * after the max_total-th is capped whether it would have failed or not, so
 * the counts do not depend on where batches end. */
static wn_err account(wn_stage *st, synth *s, const wn_batch *b, size_t *accepted)
{
    *accepted = 0;
    for (size_t j = 0; j < s->n_jobs; j++) {
        job *jb = &s->jobs[j];
        if (s->max_total && s->c.generated >= s->max_total) {
            s->c.capped++;
            continue;
        }
        if (jb->reason >= 0) {
            if (s->fail)
                return wn_fail(&st->err, WN_ERR_INPUT, "document %.*s: %s (on_failure: skip counts it and goes on)", (int)b->docs[jb->src].id.len,
                               b->docs[jb->src].id.p, jb->msg);
            s->c.failed++;
            if (!s->c.fail_by[jb->reason]++) snprintf(s->c.first_msg[jb->reason], MSG_LEN, "%s", jb->msg);
            if (s->hold) {
                if (grow((void **)&s->fails, &s->cap_fails, s->n_fails, sizeof *s->fails)) return WN_ERR_NOMEM;
                s->fails[s->n_fails++] = (held_fail){s->c.generated, jb->reason, 0};
            }
            continue;
        }
        wn_err e = finish_doc(s, &b->docs[jb->src], jb, &s->gen.docs[j]);
        if (e) return e;
        if (s->hold) {
            if (grow((void **)&s->acc, &s->cap_acc, s->n_acc, sizeof *s->acc)) return WN_ERR_NOMEM;
            s->acc[s->n_acc++] = (held_ok){jb->tmpl, jb->tokens};
        }
        jb->accepted = 1;
        s->c.generated++;
        s->c.bytes += s->gen.docs[j].text.len;
        s->c.tokens += jb->tokens;
        if (jb->tmpl >= 0) s->by_tmpl[jb->tmpl]++;
        (*accepted)++;
    }
    return WN_OK;
}

static void swap_doc(wn_doc *a, wn_doc *b)
{
    wn_doc t = *a;
    *a = *b;
    *b = t;
}

/* Interleaves the accepted documents after their sources: the batch grows
 * by `accepted` slots, then is filled from the end, moving document structs
 * (buffers and all) rather than copying; what is displaced is an empty slot,
 * which goes back to s->gen for reuse. */
static wn_err merge(synth *s, wn_batch *b, size_t accepted)
{
    size_t n = b->n;
    for (size_t k = 0; k < accepted; k++)
        if (!wn_batch_push(b)) return WN_ERR_NOMEM;
    size_t dst = n + accepted, j = s->n_jobs;
    for (size_t i = n; i-- > 0;) {
        while (j > 0 && s->jobs[j - 1].src == i) {
            j--;
            if (s->jobs[j].accepted) swap_doc(&b->docs[--dst], &s->gen.docs[j]);
        }
        if (--dst != i) swap_doc(&b->docs[dst], &b->docs[i]);
    }
    WN_CHECK(dst == 0 && j == 0);
    return WN_OK;
}

/* Across ranks with max_total: the batch's documents (sources and the
 * generations after them, in output order) go to the spill, a bit each
 * saying which are generated; only the dropped sources stay (counted). */
static wn_err hold_back(wn_stage *st, synth *s, wn_batch *b, size_t n_src)
{
    wn_err e = s->sw.open ? WN_OK : wn_spill_writer_open(&s->sw, s->spill_path, 0, &st->err);
    for (size_t i = 0, j = 0, at = 0; !e && i < n_src; i++) {
        for (int gen = 0; !e; gen = 1) { /* the source, then its accepted generations */
            if (gen) {
                while (j < s->n_jobs && s->jobs[j].src == i && !s->jobs[j].accepted) j++;
                if (j == s->n_jobs || s->jobs[j].src != i) break;
                j++;
            }
            wn_doc *d = &b->docs[at++];
            if (d->drop) continue;
            if (s->n_spilled / 64 >= s->cap_gen) {
                size_t cap = s->cap_gen ? s->cap_gen * 2 : 1024;
                uint64_t *g = wn_realloc(s->is_gen, cap * sizeof *g);
                if (!g) return WN_ERR_NOMEM;
                memset(g + s->cap_gen, 0, (cap - s->cap_gen) * sizeof *g);
                s->is_gen = g;
                s->cap_gen = cap;
            }
            if (gen) s->is_gen[s->n_spilled / 64] |= 1ull << (s->n_spilled % 64);
            if ((e = wn_spill_writer_put(&s->sw, d, &st->err))) break;
            s->n_spilled++;
        }
    }
    if (!e) e = wn_spill_writer_flush(&s->sw, &st->err);
    if (!e) wn_batch_keep_dropped(b);
    return e;
}

static wn_err syn_process(wn_stage *st, wn_batch *b)
{
    synth *s = st->state;
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "documents after the end of the stream");
    size_t n_src = b->n;
    double t0 = wn_now();
    wn_err e = plan(st, s, b);
    if (!e) e = s->mode == MODE_MODEL      ? run_model(st, s, b)
                : s->mode == MODE_ENDPOINT ? run_endpoint(st, s, b)
                                           : run_templates(st, s, b);
    size_t accepted = 0;
    if (!e) e = account(st, s, b, &accepted);
    if (!e && !s->keep_source)
        for (size_t i = 0; i < b->n; i++) b->docs[i].drop = "source_replaced";
    if (!e) e = merge(s, b, accepted);
    if (!e && s->hold) e = hold_back(st, s, b, n_src);
    s->c.seconds += wn_now() - t0;
    uint64_t mem = s->cap_jobs * sizeof(job) + s->gen.cap * sizeof(wn_doc);
    if (mem > st->mem_peak) st->mem_peak = mem;
    if (e == WN_ERR_NOMEM) return wn_fail(&st->err, e, "out of memory");
    return e;
}

/* ---- across ranks with max_total: the end of the stream ------------------------------ */

/* The cap counts generations over the whole stream in stream order, and a
 * rank's stream comes after every earlier rank's. So each rank generated
 * under the cap by itself (never more than max_total) and held its
 * documents back; here, in the first call, an exscan of one number per rank
 * (the generations it accepted: 8 bytes) tells it how many came before: it
 * keeps its first max_total - that many, gives the rest (and the failures
 * counted after the stream's cap) to `capped`, and hands its documents on
 * in order, without the generations over the cap. */
static wn_err syn_finish(wn_stage *st, wn_batch *out)
{
    synth *s = st->state;
    wn_err e;
    if (!s->hold || s->phase == 2) return WN_OK;
    if (s->phase == 0) {
        s->phase = 1;
        if ((e = wn_spill_writer_finish(&s->sw, &st->err))) return e;
        uint64_t before = s->c.generated;
        wn_mpi_exscan_sum_u64(&before, 1);
        s->allowed = before >= s->max_total ? 0 : s->max_total - before;
        for (uint64_t i = s->allowed; i < s->n_acc; i++) {
            s->c.generated--;
            s->c.capped++;
            s->c.tokens -= s->acc[i].tokens;
            if (s->acc[i].tmpl >= 0) s->by_tmpl[s->acc[i].tmpl]--;
        }
        for (size_t i = 0; i < s->n_fails; i++) {
            const held_fail *f = &s->fails[i];
            if (f->before < s->allowed) continue;
            s->c.failed--;
            s->c.capped++;
            if (!--s->c.fail_by[f->reason]) s->c.first_msg[f->reason][0] = 0;
        }
        if (!s->n_spilled) {
            s->phase = 2;
            return WN_OK;
        }
        if ((e = wn_spill_reader_open(&s->sr, s->spill_path, &st->err))) return e;
    }
    for (uint64_t bytes = 0, limit = wn_stage_emit_bytes(st, 4 << 20); bytes < limit && out->n < 65536;) {
        wn_doc *d;
        if ((e = wn_spill_reader_push(&s->sr, out, &d, &st->err))) return e;
        if (!d) {
            s->phase = 2;
            if (s->n_emitted != s->n_spilled)
                return wn_fail(&st->err, WN_ERR_STATE, "%s: %llu documents read back of %llu spilled", s->spill_path,
                               (unsigned long long)s->n_emitted, (unsigned long long)s->n_spilled);
            break;
        }
        uint64_t i = s->n_emitted++;
        if ((s->is_gen[i / 64] >> (i % 64) & 1) && s->gen_seen++ >= s->allowed) { /* over the stream's cap */
            s->c.bytes -= d->text.len;
            out->n--;
            continue;
        }
        bytes += d->text.len;
    }
    return WN_OK;
}

/* ---- checkpoint and report ------------------------------------------------------- */

#define CKPT_MAGIC 0x3368746e7973ull /* "synth3" */

/* Checkpoint: magic, sizes, the counters block, the per-template counts,
 * then what is held back across ranks: the spill's length and count, the
 * generated-document bits, the accepted generations and counted failures.
 * (The FLOPs are the stage's, kept in st->flops, saved in the block.) */
static wn_err syn_save(wn_stage *st, FILE *f)
{
    synth *s = st->state;
    uint64_t n_t = (uint64_t)wn_tmpl_count(s->tmpl), h[3] = {CKPT_MAGIC, sizeof s->c, n_t};
    if (s->phase) return wn_fail(&st->err, WN_ERR_INTERNAL, "synthesize cannot checkpoint once it has begun emitting");
    wn_err e = wn_spill_writer_sync(&s->sw, &st->err);
    if (e) return e;
    uint64_t held[5] = {(uint64_t)s->sw.open, s->sw.bytes, s->n_spilled, s->n_acc, s->n_fails};
    size_t words = (s->n_spilled + 63) / 64;
    s->c.flops = st->flops;
    if (fwrite(h, sizeof h, 1, f) != 1 || fwrite(&s->c, sizeof s->c, 1, f) != 1 ||
        fwrite(s->by_tmpl, sizeof(uint64_t), n_t, f) != n_t || fwrite(held, sizeof held, 1, f) != 1 ||
        (words && fwrite(s->is_gen, sizeof *s->is_gen, words, f) != words) ||
        (s->n_acc && fwrite(s->acc, sizeof *s->acc, s->n_acc, f) != s->n_acc) ||
        (s->n_fails && fwrite(s->fails, sizeof *s->fails, s->n_fails, f) != s->n_fails))
        return wn_fail(&st->err, WN_ERR_IO, "write failed");
    return WN_OK;
}

static wn_err syn_load(wn_stage *st, FILE *f)
{
    synth *s = st->state;
    uint64_t h[3], n_t = (uint64_t)wn_tmpl_count(s->tmpl);
    if (fread(h, sizeof h, 1, f) != 1 || h[0] != CKPT_MAGIC || h[1] != sizeof s->c)
        return wn_fail(&st->err, WN_ERR_STATE, "not a synthesize checkpoint of this version");
    if (h[2] != n_t)
        return wn_fail(&st->err, WN_ERR_STATE, "the checkpoint has %llu templates, the file %llu: the template file "
                       "changed since the run started", (unsigned long long)h[2], (unsigned long long)n_t);
    uint64_t held[5];
    if (fread(&s->c, sizeof s->c, 1, f) != 1 || fread(s->by_tmpl, sizeof(uint64_t), n_t, f) != n_t ||
        fread(held, sizeof held, 1, f) != 1)
        return wn_fail(&st->err, WN_ERR_STATE, "checkpoint is cut short");
    for (int i = 0; i < N_REASONS; i++) s->c.first_msg[i][MSG_LEN - 1] = 0;
    st->flops = s->c.flops;
    if (!s->hold && (held[2] || held[0]))
        return wn_fail(&st->err, WN_ERR_STATE, "the checkpoint holds documents back for a run across ranks");
    size_t words = (held[2] + 63) / 64;
    s->n_spilled = held[2];
    s->is_gen = wn_calloc(words + 1, sizeof *s->is_gen);
    s->cap_gen = words + 1;
    s->acc = wn_malloc((held[3] + 1) * sizeof *s->acc);
    s->cap_acc = held[3] + 1;
    s->fails = wn_malloc((held[4] + 1) * sizeof *s->fails);
    s->cap_fails = held[4] + 1;
    if (!s->is_gen || !s->acc || !s->fails) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    s->n_acc = held[3];
    s->n_fails = held[4];
    if ((words && fread(s->is_gen, sizeof *s->is_gen, words, f) != words) ||
        (s->n_acc && fread(s->acc, sizeof *s->acc, s->n_acc, f) != s->n_acc) ||
        (s->n_fails && fread(s->fails, sizeof *s->fails, s->n_fails, f) != s->n_fails))
        return wn_fail(&st->err, WN_ERR_STATE, "checkpoint is cut short");
    for (size_t i = 0; i < s->n_fails; i++)
        if (s->fails[i].reason < 0 || s->fails[i].reason >= N_REASONS)
            return wn_fail(&st->err, WN_ERR_STATE, "synthesize checkpoint: bad failure reason");
    for (size_t i = 0; i < s->n_acc; i++)
        if (s->acc[i].tmpl >= (int32_t)n_t) return wn_fail(&st->err, WN_ERR_STATE, "synthesize checkpoint: bad template");
    if (held[0]) {
        s->sw.bytes = held[1];
        return wn_spill_writer_open(&s->sw, s->spill_path, 1, &st->err);
    }
    return WN_OK;
}

/* Every rank calls this: the counters are summed over the ranks (the
 * work counters - prompt and forward tokens, requests - are each rank's
 * work, which with max_total across ranks can be more than one process
 * does); a failure reason's example is the first rank's that has one. */
static void syn_report(wn_stage *st, wn_jw *w)
{
    synth one = *(synth *)st->state, *s = &one;
    int n_t = wn_tmpl_count(s->tmpl);
    enum { N_U64 = 14 + N_REASONS };
    uint64_t *u = wn_malloc((N_U64 + (size_t)n_t) * sizeof *u);
    uint64_t *counts = wn_malloc((size_t)wn_mpi_size() * sizeof *counts);
    WN_CHECK(u && counts); /* a few bytes; every rank must take part in the exchange */
    uint64_t *by_tmpl = u + N_U64;
    counters *k = &s->c;
    uint64_t *f[14] = {&k->sources, &k->planned, &k->generated, &k->capped, &k->failed, &k->bytes, &k->tokens,
                       &k->prompt_tokens, &k->forward_tokens, &k->requests, &k->request_failures, &k->retries,
                       &k->timeouts, &k->cache_hits};
    for (int i = 0; i < 14; i++) u[i] = *f[i];
    memcpy(u + 14, k->fail_by, sizeof k->fail_by);
    memcpy(by_tmpl, s->by_tmpl, (size_t)n_t * sizeof *by_tmpl);
    wn_mpi_allreduce_sum_u64(u, N_U64 + (size_t)n_t);
    double sec[2] = {k->seconds, k->request_seconds};
    wn_mpi_allreduce_sum_f64(sec, 2);
    wn_buf msgs = {0};
    wn_err e = wn_mpi_allgatherv(k->first_msg, sizeof k->first_msg, &msgs, counts);
    WN_CHECK(!e);
    for (int r = 0; r < N_REASONS; r++) { /* the first rank's example of each reason */
        k->first_msg[r][0] = 0;
        for (size_t q = 0; q < msgs.len / sizeof k->first_msg && !k->first_msg[r][0]; q++)
            memcpy(k->first_msg[r], msgs.p + q * sizeof k->first_msg + (size_t)r * MSG_LEN, MSG_LEN);
    }
    for (int i = 0; i < 14; i++) *f[i] = u[i];
    memcpy(k->fail_by, u + 14, sizeof k->fail_by);
    s->by_tmpl = by_tmpl;
    k->seconds = sec[0];
    k->request_seconds = sec[1];
    wn_buf_free(&msgs);
    wn_free(counts);
    wn_jw_key(w, "mode"); wn_jw_str(w, mode_names[s->mode]);
    wn_jw_key(w, "sources"); wn_jw_u64(w, s->c.sources);
    wn_jw_key(w, "planned"); wn_jw_u64(w, s->c.planned);
    wn_jw_key(w, "generated"); wn_jw_u64(w, s->c.generated);
    wn_jw_key(w, "generated_per_mode");
    wn_jw_obj_begin(w);
    wn_jw_key(w, mode_names[s->mode]); wn_jw_u64(w, s->c.generated);
    wn_jw_obj_end(w);
    wn_jw_key(w, s->mode == MODE_TEMPLATE ? "generated_per_template" : "generated_per_prompt");
    wn_jw_obj_begin(w);
    for (int i = 0; i < wn_tmpl_count(s->tmpl); i++) {
        wn_jw_key(w, wn_tmpl_name(s->tmpl, i));
        wn_jw_u64(w, s->by_tmpl[i]);
    }
    wn_jw_obj_end(w);
    wn_jw_key(w, "capped"); wn_jw_u64(w, s->c.capped);
    wn_jw_key(w, "failures"); wn_jw_u64(w, s->c.failed);
    wn_jw_key(w, "failures_by_reason");
    wn_jw_obj_begin(w);
    for (int i = 0; i < N_REASONS; i++)
        if (s->c.fail_by[i]) {
            wn_jw_key(w, reasons[i]);
            wn_jw_u64(w, s->c.fail_by[i]);
        }
    wn_jw_obj_end(w);
    wn_jw_key(w, "failure_examples");
    wn_jw_obj_begin(w);
    for (int i = 0; i < N_REASONS; i++)
        if (s->c.fail_by[i]) {
            wn_jw_key(w, reasons[i]);
            wn_jw_str(w, s->c.first_msg[i]);
        }
    wn_jw_obj_end(w);
    wn_jw_key(w, "bytes_generated"); wn_jw_u64(w, s->c.bytes);
    wn_jw_key(w, "tokens_generated"); wn_jw_u64(w, s->c.tokens);
    if (s->mode == MODE_MODEL) {
        wn_jw_key(w, "prompt_tokens"); wn_jw_u64(w, s->c.prompt_tokens);
        wn_jw_key(w, "forward_tokens"); wn_jw_u64(w, s->c.forward_tokens);
        wn_jw_key(w, "model");
        wn_jw_obj_begin(w);
        const wn_gpt_config *c = wn_gpt_cfg(s->m);
        wn_jw_key(w, "path"); wn_jw_str(w, s->model_path);
        wn_jw_key(w, "params"); wn_jw_u64(w, wn_gpt_num_params(s->m));
        wn_jw_key(w, "layers"); wn_jw_i64(w, c->layers);
        wn_jw_key(w, "dim"); wn_jw_i64(w, c->dim);
        wn_jw_key(w, "context"); wn_jw_i64(w, c->context);
        wn_jw_key(w, "vocab"); wn_jw_i64(w, c->vocab);
        wn_jw_obj_end(w);
    }
    if (s->mode == MODE_ENDPOINT) {
        wn_jw_key(w, "endpoint"); wn_jw_str(w, s->url);
        wn_jw_key(w, "requests"); wn_jw_u64(w, s->c.requests);
        wn_jw_key(w, "request_failures"); wn_jw_u64(w, s->c.request_failures);
        wn_jw_key(w, "retries"); wn_jw_u64(w, s->c.retries);
        wn_jw_key(w, "timeouts"); wn_jw_u64(w, s->c.timeouts);
        wn_jw_key(w, "cache_hits"); wn_jw_u64(w, s->c.cache_hits);
        wn_jw_key(w, "cache_dir"); wn_jw_str(w, s->cache_dir.len ? s->cache_dir.p : "");
        wn_jw_key(w, "request_seconds"); wn_jw_f64(w, s->c.request_seconds);
        wn_jw_key(w, "requests_per_second");
        wn_jw_f64(w, s->c.request_seconds > 0 ? (double)s->c.requests / s->c.request_seconds : 0);
    }
    wn_jw_key(w, "generation_seconds"); wn_jw_f64(w, s->c.seconds);
    wn_jw_key(w, "generated_docs_per_second"); wn_jw_f64(w, s->c.seconds > 0 ? (double)s->c.generated / s->c.seconds : 0);
    wn_jw_key(w, "tokens_per_second"); wn_jw_f64(w, s->c.seconds > 0 ? (double)s->c.tokens / s->c.seconds : 0);
    wn_free(u);
}

const wn_stage_def wn_stage_synthesize = {
    .name = "synthesize",
    .summary = "add generated documents (templates, a GPT checkpoint, an OpenAI-compatible endpoint) after their sources",
    .doc = "Each source document gets per_doc generated documents (a fraction is drawn per document by\n"
           "a hash of its id), deterministic from `seed` whatever the thread count, placed right after\n"
           "it with id <source>#synth-<k> and attributes synthetic: true and synth: {mode, template or\n"
           "prompt, source, index, seed[, model, endpoint, tokens]}. mode template expands the template\n"
           "file `templates` (docs/synthesis.md: word lists, int ranges, calc, weighted rules and inline\n"
           "choices, doc fields, filters). mode model expands a prompt (`prompts`, or the built-in\n"
           "rephrase/continue/summarize/qa) and continues it with the GPT checkpoint `model` on the CPU\n"
           "(temperature, top_k, top_p, max_tokens, batch). mode endpoint sends the prompt to an\n"
           "OpenAI-compatible `url` (concurrency, retries with doubling backoff, timeout_ms, a response\n"
           "cache keyed by a hash of the request). max_total caps the generated documents; keep_source:\n"
           "false drops the sources (reason source_replaced). Failed generations are counted per reason\n"
           "(on_failure: fail stops the run). Report: sources, planned, generated, generated_per_mode,\n"
           "generated_per_template/_prompt, capped, failures, failures_by_reason, failure_examples,\n"
           "bytes_generated, tokens_generated, throughput; endpoint: requests, request_failures, retries,\n"
           "timeouts, cache_hits. Across MPI ranks the output is the one process's (max_total: the\n"
           "ranks hold documents back until an exscan of their generations places the cap).",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(synth),
    .open = syn_open,
    .process = syn_process,
    .finish = syn_finish,
    .save = syn_save,
    .load = syn_load,
    .report = syn_report,
    .close = syn_close,
};
