/*
 * cmd_train.c - `winnow train`: trains the bundled GPT-2 model (model.h) on
 * token shards (dataloader.h) and writes OUT/model.safetensors,
 * OUT/optimizer.bin and OUT/train.json.
 *
 * One step: the next B sequences, forward with per-token weights, backward,
 * gradient clipping to --grad-clip, AdamW at the step's learning rate
 * (linear warmup, cosine decay to --min-lr at --steps). Validation loss
 * (--val, first --val-batches batches in order) at step 0, every
 * --val-every steps and at the last step. A checkpoint every
 * --checkpoint-every steps and at the end; --resume continues from the
 * last one so that the result is byte-identical to an uninterrupted run.
 *
 * optimizer.bin (all little-endian) holds everything a resume needs beside
 * model.safetensors:
 *   bytes 0..127   header: u32 magic 20261120, u32 version 1, then u64
 *                  [1] step (completed optimizer steps), [2] n_params,
 *                  [3] data epoch, [4] next sequence in that epoch's order,
 *                  [5] sampling RNG state, [6] tokens trained on,
 *                  [7] n_val (validation points), [8] options JSON bytes,
 *                  [9] wall seconds so far (f64 bits); the rest zero
 *   options JSON   the run's resolved options (data, model shape, batch,
 *                  schedule, seed, ...), restored by --resume
 *   f32 train_loss[step]; n_val x (u32 step, f32 loss)
 *   f32 m[n_params], f32 v[n_params]   AdamW moments in model.h tensor order
 * The file size must equal the sum of those parts. With --adam-8bit the
 * version is 2 and the moments are the 8-bit state instead (adam8.h), as a
 * safetensors image that runs to the end of the file (self-describing, and
 * checked by the safetensors parser): U8 adam8.{m,v}.code [n_params], F32
 * adam8.{m,v}.absmax [blocks], F32 adam8.{m,v}.map [256]; metadata format
 * "winnow-adam8", block_size "256". Restored as stored: a resume is exact. model.safetensors carries
 * the same step in its metadata ("winnow_step"). A checkpoint writes
 * optimizer.bin.tmp (fsynced), then model.safetensors (atomically), then
 * renames optimizer.bin.tmp: a crash between the two renames leaves a
 * complete optimizer.bin.tmp whose step matches the model, which --resume
 * then takes.
 *
 * Devices (--device): cpu is model.c; cuda is gpt_cuda.h, a device copy of
 * the same model that the loop drives instead (same data order, schedule,
 * clipping, validation and checkpoints); the host model then only holds
 * what is downloaded for checkpoints (parameters and moments) and sampling
 * (parameters). auto is cuda when this build has CUDA and a device is
 * visible, else cpu.
 *
 * Ranks (mpirun -np R; mpi.h): data parallelism, on the CPU or on GPUs. Every
 * rank builds the same model (same seed or checkpoint) and reads the same
 * global batch of B sequences; rank k trains on rows [k B/R, (k+1) B/R).
 * After its backward the gradients are combined so that the update is the
 * one-process update on the whole batch (dp_combine), and every rank takes
 * the same AdamW step; parameters stay identical (checked by a checksum at
 * every checkpoint). The validation batches are split by rows the same way
 * and their sums reduced. Rank 0 alone writes checkpoints, train.json,
 * progress and samples. Errors stop every rank: see "data parallelism"
 * below. On GPUs (--device cuda, or auto when every rank sees one) rank k
 * takes device (local rank mod visible devices), and the gradient sum runs
 * with NCCL (nccl.h) when it loads and no two ranks share a GPU, else
 * staged through host memory (device -> host, MPI_Allreduce, -> device);
 * WINNOW_NCCL=0|1 forces one (dp_setup). train.json "allreduce" says which:
 * "none" (one rank), "mpi" (CPU ranks), "host" or "nccl".
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <sys/resource.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli.h"
#include "dataloader.h"
#include "energy.h"
#include "fs.h"
#include "gpt_cuda.h"
#include "json.h"
#include "model.h"
#include "mpi.h"
#include "nccl.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "../kernels/device.h"

#define OPT_MAGIC 20261120u
#define OPT_VERSION 1u       /* float moments */
#define OPT_VERSION_ADAM8 2u /* 8-bit moments, as a safetensors image */
#define OPT_HEADER 128
#define SAMPLE_TOKENS 64

static const char *const usage =
    "usage: winnow train --data GLOB [--val GLOB] --out DIR [options]\n"
    "\n"
    "Trains the bundled GPT-2 model on token shards (llm.c .bin layout) and writes DIR/model.safetensors\n"
    "(HF GPT-2 names), DIR/optimizer.bin (state for --resume) and DIR/train.json (losses, figures).\n"
    "\n"
    "model (ignored shapes come from --init when given):\n"
    "  --layers N          transformer blocks (default 4)\n"
    "  --heads N           attention heads; must divide --dim (default 4)\n"
    "  --dim N             width C (default 256)\n"
    "  --context N         sequence length T, and the model's maximum (default 256)\n"
    "  --init CKPT         start from a safetensors GPT-2 checkpoint (winnow's or HF's)\n"
    "training:\n"
    "  --batch N           sequences per step B (default 8)\n"
    "  --steps N           optimizer steps; the schedule ends here (default 1000)\n"
    "  --lr X              peak learning rate (default 1e-3)\n"
    "  --min-lr X          learning rate at the end of the cosine decay (default lr / 10)\n"
    "  --warmup N          linear warmup steps (default min(100, steps / 10))\n"
    "  --weight-decay X    AdamW decoupled weight decay on 2-D tensors (default 0.1)\n"
    "  --grad-clip X       clip the global gradient norm to X; 0 = off (default 1.0)\n"
    "  --seed N            initialisation and data order (default 1337)\n"
    "validation, checkpoints, samples:\n"
    "  --val GLOB          validation shards; loss every --val-every steps (default 100)\n"
    "  --val-batches N     batches per validation (default 10)\n"
    "  --checkpoint-every N  steps between checkpoints; 0 = only at the end (default 500)\n"
    "  --resume            continue the run in DIR from its last checkpoint\n"
    "  --stop-after N      stop (with a checkpoint) once step N is done, as if interrupted\n"
    "  --early-stop N      stop when the validation loss has not improved in N evaluations (needs --val);\n"
    "                      train.json then says what it saved (steps, tokens, FLOPs)\n"
    "  --early-stop-margin X  an improvement must exceed X (default 0)\n"
    "  --tokenizer PATH    tokenizer.json or GPT-2 directory: vocabulary size, and samples\n"
    "  --prompt TEXT       with --tokenizer: print a sampled continuation at the end\n"
    "  --sample-every N    ... and every N steps (default 0: only at the end)\n"
    "runtime:\n"
    "  --threads N         OpenMP threads (results do not depend on it)\n"
    "  --device D          cpu | cuda | auto (default auto: cuda when built with CUDA and a GPU is visible)\n"
    "  --tf32              with cuda: TF32 tensor cores for the matrix products (faster; default full fp32)\n"
    "  --bf16              with cuda: bf16 matrix products (fp32 accumulation and master weights; the\n"
    "                      products' inputs kept in bf16: less activation memory; loss tracks fp32 closely)\n"
    "  under mpirun -np R  data-parallel: each rank takes B / R sequences of every step (B must be a multiple\n"
    "                      of R); the update equals one process's on the whole batch. With cuda each rank\n"
    "                      takes GPU (local rank mod visible GPUs); gradients are summed with NCCL when\n"
    "                      libnccl.so.2 loads and no two ranks share a GPU, else through host memory and\n"
    "                      MPI (WINNOW_NCCL=1 or 0 forces NCCL or the host path)\n"
    "memory:\n"
    "  --adam-8bit         AdamW moments in 8 bits (block-wise dynamic quantization, blocks of 256): about\n"
    "                      2 bytes per parameter instead of 8; kept by --resume, which cannot change it\n"
    "  --recompute         CPU: keep only each block's input in the forward and recompute the block in the\n"
    "                      backward: much less activation memory, same gradients bit for bit, ~25% slower\n"
    "  --plan              print the memory of parameters, gradients, optimizer moments and activations for\n"
    "                      the shape (--layers --heads --dim --context --batch; --vocab N or --tokenizer or\n"
    "                      --init; with --adam-8bit, --recompute) and the largest batch that fits --memory\n"
    "                      SIZE (default: 80% of the RAM available now); needs no data, trains nothing\n"
    "  --batch 0           pick that largest batch (up to 1024) and train with it\n"
    "\n"
    "Vocabulary: from --init, else --tokenizer, else the shards' index.json vocab_size, else the\n"
    "largest token id + 1. On a terminal, one progress line per step. See README \"Training\".\n";

/* ---- options ------------------------------------------------------------------ */

typedef struct {
    char *data, *val, *out, *init, *tokenizer, *prompt, *device, *memory;
    int layers, heads, dim, context, batch, steps, warmup, val_every, val_batches, checkpoint_every,
        sample_every, threads, stop_after, resume, tf32, bf16, early_stop, plan, vocab, adam_8bit, recompute;
    double lr, min_lr, weight_decay, grad_clip, early_margin;
    int64_t seed;
} opts;

enum { F_STR, F_INT, F_F64, F_I64, F_FLAG };
/* lock: a resumed run cannot change it; save: kept in optimizer.bin and
 * restored by --resume (and shown in train.json's config). A saved flag
 * (F_FLAG) missing from an older optimizer.bin reads as off. */
static const struct {
    const char *flag;
    int type;
    size_t off;
    int lock, save;
    double lo, hi;
} flags[] = {
    {"--data", F_STR, offsetof(opts, data), 1, 1, 0, 0},
    {"--val", F_STR, offsetof(opts, val), 1, 1, 0, 0},
    {"--out", F_STR, offsetof(opts, out), 0, 0, 0, 0},
    {"--init", F_STR, offsetof(opts, init), 1, 1, 0, 0},
    {"--layers", F_INT, offsetof(opts, layers), 1, 1, 1, 1000},
    {"--heads", F_INT, offsetof(opts, heads), 1, 1, 1, 4096},
    {"--dim", F_INT, offsetof(opts, dim), 1, 1, 1, 1 << 16},
    {"--context", F_INT, offsetof(opts, context), 1, 1, 1, 1 << 20},
    {"--batch", F_INT, offsetof(opts, batch), 1, 1, 0, 1 << 20},
    {"--seed", F_I64, offsetof(opts, seed), 1, 1, 0, 9e18},
    {"--steps", F_INT, offsetof(opts, steps), 0, 1, 0, 1e9},
    {"--lr", F_F64, offsetof(opts, lr), 0, 1, 1e-12, 10},
    {"--min-lr", F_F64, offsetof(opts, min_lr), 0, 1, 0, 10},
    {"--warmup", F_INT, offsetof(opts, warmup), 0, 1, 0, 1e9},
    {"--weight-decay", F_F64, offsetof(opts, weight_decay), 0, 1, 0, 100},
    {"--grad-clip", F_F64, offsetof(opts, grad_clip), 0, 1, 0, 1e9},
    {"--val-every", F_INT, offsetof(opts, val_every), 0, 1, 1, 1e9},
    {"--val-batches", F_INT, offsetof(opts, val_batches), 0, 1, 1, 1e9},
    {"--checkpoint-every", F_INT, offsetof(opts, checkpoint_every), 0, 1, 0, 1e9},
    {"--sample-every", F_INT, offsetof(opts, sample_every), 0, 1, 0, 1e9},
    {"--tokenizer", F_STR, offsetof(opts, tokenizer), 0, 1, 0, 0},
    {"--prompt", F_STR, offsetof(opts, prompt), 0, 1, 0, 0},
    {"--threads", F_INT, offsetof(opts, threads), 0, 0, 1, 4096},
    {"--device", F_STR, offsetof(opts, device), 0, 0, 0, 0},
    {"--stop-after", F_INT, offsetof(opts, stop_after), 0, 0, 0, 1e9},
    {"--early-stop", F_INT, offsetof(opts, early_stop), 0, 1, 0, 1e9},
    {"--early-stop-margin", F_F64, offsetof(opts, early_margin), 0, 1, 0, 1e9},
    {"--resume", F_FLAG, offsetof(opts, resume), 0, 0, 0, 0},
    {"--tf32", F_FLAG, offsetof(opts, tf32), 0, 0, 0, 0},
    {"--bf16", F_FLAG, offsetof(opts, bf16), 0, 0, 0, 0},
    {"--plan", F_FLAG, offsetof(opts, plan), 0, 0, 0, 0},
    {"--vocab", F_INT, offsetof(opts, vocab), 0, 0, 1, 1 << 24},
    {"--memory", F_STR, offsetof(opts, memory), 0, 0, 0, 0},
    {"--adam-8bit", F_FLAG, offsetof(opts, adam_8bit), 1, 1, 0, 0},
    {"--recompute", F_FLAG, offsetof(opts, recompute), 0, 0, 0, 0},
};
#define N_FLAGS ((int)WN_ARRAY_LEN(flags))

static int flag_idx(const char *flag)
{
    int k = 0;
    while (k < N_FLAGS - 1 && strcmp(flags[k].flag, flag)) k++;
    return k;
}

static void opts_defaults(opts *o)
{
    memset(o, 0, sizeof *o);
    o->layers = 4;
    o->heads = 4;
    o->dim = 256;
    o->context = 256;
    o->batch = 8;
    o->steps = 1000;
    o->warmup = -1;
    o->val_every = 100;
    o->val_batches = 10;
    o->checkpoint_every = 500;
    o->lr = 1e-3;
    o->min_lr = -1;
    o->weight_decay = 0.1;
    o->grad_clip = 1.0;
    o->seed = 1337;
}

static void opts_free(opts *o)
{
    for (int i = 0; i < N_FLAGS; i++)
        if (flags[i].type == F_STR) {
            char **s = (char **)((char *)o + flags[i].off);
            wn_free(*s);
            *s = NULL;
        }
}

/* "--min-lr" -> "min_lr" */
static void json_key(const char *flag, char *key)
{
    const char *p = flag + 2;
    while (*p) { *key++ = *p == '-' ? '_' : *p; p++; }
    *key = 0;
}

/* Sets flag i from text; returns 0 or fills err. */
static wn_err set_flag(opts *o, int i, const char *text, wn_errbuf *err)
{
    void *f = (char *)o + flags[i].off;
    char *end;
    errno = 0;
    switch (flags[i].type) {
    case F_STR:
        wn_free(*(char **)f);
        if (!(*(char **)f = wn_strdup(text))) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
        return WN_OK;
    case F_INT:
    case F_I64: {
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno || v < flags[i].lo || (double)v > flags[i].hi)
            return wn_fail(err, WN_ERR_USAGE, "%s: expected an integer in [%.0f, %.0f], got '%s'", flags[i].flag,
                           flags[i].lo, flags[i].hi, text);
        if (flags[i].type == F_INT) *(int *)f = (int)v;
        else *(int64_t *)f = v;
        return WN_OK;
    }
    case F_F64: {
        double v = strtod(text, &end);
        if (!*text || *end || errno || !(v >= flags[i].lo && v <= flags[i].hi))
            return wn_fail(err, WN_ERR_USAGE, "%s: expected a number in [%g, %g], got '%s'", flags[i].flag, flags[i].lo,
                           flags[i].hi, text);
        *(double *)f = v;
        return WN_OK;
    }
    }
    return WN_OK;
}

/* ---- memory planning ------------------------------------------------------------ */

/* SIZE with an optional K/M/G/T (powers of 1024) and B/iB suffix. */
static int parse_size(const char *t, double *out)
{
    char *end;
    double v = strtod(t, &end);
    if (end == t || !(v >= 0)) return 0;
    double k = 1;
    if (*end == 'K' || *end == 'k') k = 1024.0, end++;
    else if (*end == 'M') k = 1024.0 * 1024, end++;
    else if (*end == 'G') k = 1024.0 * 1024 * 1024, end++;
    else if (*end == 'T') k = 1024.0 * 1024 * 1024 * 1024, end++;
    if (*end == 'i') end++;
    if (*end == 'B') end++;
    if (*end) return 0;
    *out = v * k;
    return 1;
}

/* MemAvailable of /proc/meminfo in bytes, 0 when unknown. */
static double ram_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* The memory budget for planning: --memory, else 80% of available RAM. */
static int plan_budget(const opts *o, double *bytes, const char **what)
{
    if (o->memory) {
        *what = "--memory";
        return parse_size(o->memory, bytes);
    }
    *what = "80% of the RAM available now";
    *bytes = 0.8 * ram_available();
    return *bytes > 0;
}

/* The memory options (wn_gpt_memory's opts) that the flags ask for. */
static int mem_opts(const opts *o)
{
    return (o->adam_8bit ? WN_GPT_MEM_ADAM8 : 0) | (o->recompute ? WN_GPT_MEM_RECOMPUTE : 0);
}

/* The largest B <= 1024 whose forward + backward fits `bytes` (0 if none). */
static int plan_batch(const wn_gpt_config *c, int T, int mopts, double bytes)
{
    int best = 0;
    for (int B = 1; B <= 1024; B++) {
        wn_gpt_mem m;
        wn_gpt_memory(c, B, T, mopts, &m);
        if (m.total > bytes) break;
        best = B;
    }
    return best;
}

static void print_bytes(const char *what, double b)
{
    printf("  %-28s %12.1f MiB\n", what, b / (1024.0 * 1024.0));
}

static int plan(const opts *o, wn_errbuf *err)
{
    wn_gpt_config c = {o->vocab, o->context, o->layers, o->heads, o->dim};
    if (o->init) {
        wn_gpt *m = NULL;
        if (wn_st_gpt_load_file(&m, o->init, o->heads, err)) {
            fprintf(stderr, "winnow train: %s\n", err->msg);
            return 1;
        }
        c = *wn_gpt_cfg(m);
        wn_gpt_free(m);
    } else if (!c.vocab && o->tokenizer) {
        wn_tokenizer *t = NULL;
        if (wn_tokenizer_load(&t, o->tokenizer, err)) {
            fprintf(stderr, "winnow train: %s\n", err->msg);
            return 1;
        }
        c.vocab = wn_tokenizer_vocab_size(t);
        wn_tokenizer_free(t);
    }
    if (!c.vocab) c.vocab = 50257;
    int T = o->context < c.context ? o->context : c.context, B = o->batch ? o->batch : 1, mo = mem_opts(o);
    wn_gpt_mem m, plain;
    wn_gpt_memory(&c, B, T, mo, &m);
    wn_gpt_memory(&c, B, T, 0, &plain);
    printf("plan: GPT-2 L%d C%d H%d, vocabulary %d, context %d, batch %d, float32 on the CPU%s%s\n", c.layers, c.dim,
           c.heads, c.vocab, T, B, o->adam_8bit ? ", 8-bit AdamW moments" : "",
           o->recompute ? ", activations recomputed" : "");
    print_bytes("parameters", m.params);
    print_bytes("gradients", m.grads);
    print_bytes(o->adam_8bit ? "AdamW moments (m, v), 8-bit" : "AdamW moments (m, v)", m.optimizer);
    print_bytes(o->recompute ? "activations (+ grads), recomp." : "activations (+ gradients)", m.activations);
    print_bytes("scratch", m.scratch);
    print_bytes("total", m.total);
    if (mo) /* what the options save against the plain float32 layout */
        printf("  saved by %s%s%s: %.1f MiB (moments %.1f, activations %.1f) of %.1f MiB\n",
               o->adam_8bit ? "--adam-8bit" : "", o->adam_8bit && o->recompute ? " and " : "",
               o->recompute ? "--recompute" : "", (plain.total - m.total) / 1048576.0,
               (plain.optimizer - m.optimizer) / 1048576.0, (plain.activations - m.activations) / 1048576.0,
               plain.total / 1048576.0);
    double budget;
    const char *what;
    if (plan_budget(o, &budget, &what)) {
        int best = plan_batch(&c, T, mo, budget);
        printf("largest batch within %.1f MiB (%s): %d%s\n", budget / (1024.0 * 1024.0), what, best,
               best == 1024 ? " (the planner's cap)" : best ? "" : ": even one sequence does not fit");
    } else if (o->memory) {
        fprintf(stderr, "winnow train: --memory: expected a size such as 8GiB or 512M, got '%s'\n", o->memory);
        return 2;
    }
    return 0;
}


static void opts_json(const opts *o, wn_jw *w)
{
    char key[32];
    wn_jw_obj_begin(w);
    for (int i = 0; i < N_FLAGS; i++) {
        if (!flags[i].save) continue;
        const void *f = (const char *)o + flags[i].off;
        json_key(flags[i].flag, key);
        wn_jw_key(w, key);
        switch (flags[i].type) {
        case F_STR: if (*(char *const *)f) wn_jw_str(w, *(char *const *)f); else wn_jw_null(w); break;
        case F_INT: wn_jw_i64(w, *(const int *)f); break;
        case F_I64: wn_jw_i64(w, *(const int64_t *)f); break;
        case F_F64: wn_jw_f64(w, *(const double *)f); break;
        case F_FLAG: wn_jw_bool(w, *(const int *)f); break;
        }
    }
    wn_jw_obj_end(w);
}

/* Restores the saved options from their JSON (optimizer.bin). */
static wn_err opts_from_json(opts *o, const char *js, size_t n, const char *path, wn_errbuf *err)
{
    if (wn_json_check_object(js, n, NULL, NULL)) return wn_fail(err, WN_ERR_STATE, "%s: options are not JSON", path);
    char key[32];
    for (int i = 0; i < N_FLAGS; i++) {
        if (!flags[i].save) continue;
        json_key(flags[i].flag, key);
        wn_span v;
        void *f = (char *)o + flags[i].off;
        if (!wn_json_get(js, n, key, &v)) {
            if (flags[i].type == F_FLAG) { /* written before the flag existed */
                *(int *)f = 0;
                continue;
            }
            return wn_fail(err, WN_ERR_STATE, "%s: options lack '%s'", path, key);
        }
        int64_t iv;
        double dv;
        int ok = 1;
        switch (flags[i].type) {
        case F_STR:
            wn_free(*(char **)f);
            *(char **)f = NULL;
            if (v.p[0] == '"') {
                wn_buf b = {0};
                ok = !wn_json_decode_string(v, &b) && (*(char **)f = wn_strdup(b.p ? b.p : "")) != NULL;
                wn_buf_free(&b);
            } else ok = v.n == 4 && !memcmp(v.p, "null", 4);
            break;
        case F_INT: ok = wn_json_to_i64(v, &iv) && iv >= INT32_MIN && iv <= INT32_MAX; if (ok) *(int *)f = (int)iv; break;
        case F_I64: ok = wn_json_to_i64(v, &iv); if (ok) *(int64_t *)f = iv; break;
        case F_F64: ok = wn_json_to_double(v, &dv); if (ok) *(double *)f = dv; break;
        case F_FLAG:
            ok = (v.n == 4 && !memcmp(v.p, "true", 4)) || (v.n == 5 && !memcmp(v.p, "false", 5));
            if (ok) *(int *)f = v.n == 4;
            break;
        }
        if (!ok) return wn_fail(err, WN_ERR_STATE, "%s: option '%s' is unreadable", path, key);
    }
    return WN_OK;
}

/* Is flag i's value the same in a and b? */
static int same_value(const opts *a, const opts *b, int i)
{
    const void *x = (const char *)a + flags[i].off, *y = (const char *)b + flags[i].off;
    switch (flags[i].type) {
    case F_STR: {
        const char *s = *(char *const *)x, *t = *(char *const *)y;
        return s == t || (s && t && !strcmp(s, t));
    }
    case F_INT: return *(const int *)x == *(const int *)y;
    case F_I64: return *(const int64_t *)x == *(const int64_t *)y;
    case F_F64: return *(const double *)x == *(const double *)y;
    case F_FLAG: return *(const int *)x == *(const int *)y;
    }
    return 1;
}

/* ---- the run -------------------------------------------------------------------- */

typedef struct {
    opts o;
    char path_model[4200], path_opt[4200], path_json[4200];
    wn_gpt *m;
    wn_gpt_cuda *g; /* --device cuda: the model lives here; m gets downloads */
    wn_loader *train, *val;
    wn_tokenizer *tok;
    wn_gpt_config cfg;
    int T, B;
    uint64_t step, tokens, rng;
    float *train_loss; /* steps entries */
    struct { uint32_t step; float loss; } *vals;
    uint64_t n_val, cap_val;
    uint32_t *in, *tg;
    float *w;
    double entropy_bits, wall_before, wall_start, tok_per_s;
    double peak_flops; /* cuda: the device's peak FLOP/s for MFU; 0 when unknown */
    int progress;
    int early; /* stopped early (--early-stop) */
    int auto_batch; /* --batch 0 */
    int have_rapl;
    uint64_t rapl0;          /* energy counters at the start */
    wn_energy_gpu_mark gpu0; /* --device cuda: the GPUs' counters at the start */
    /* MPI (one process: rank 0 of 1, rows = B) */
    int rank, ranks, rows; /* this rank, the rank count, this rank's rows (sequences) of each batch */
    int synced;            /* every rank got through start-up */
    int stopped;           /* the ranks agreed to stop: no more collectives */
    int quiet;             /* stopping for another rank's error: it prints */
    int sym_err;           /* the error happened on every rank at the same point */
    /* the gradient all-reduce (dp_setup) */
    const char *allreduce; /* "none", "mpi" (CPU ranks), "host" (GPU, staged through host memory), "nccl" */
    wn_nccl *nccl;         /* "nccl": the communicator */
    int local_rank, gpu;   /* cuda: this rank's index on its node, and the device it took */
    const char *local_how; /* where local_rank came from (wn_mpi_local_rank) */
    int64_t *rank_gpu;     /* cuda: every rank's device (ranks entries) */
    int n_gpus;            /* cuda: distinct GPUs the ranks use (MFU counts their peaks) */
} run;

/* The shortest decimal that reads back as the same float. */
static void jw_float(wn_jw *w, float x)
{
    if (!isfinite(x)) { wn_jw_null(w); return; }
    char s[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(s, sizeof s, "%.*g", p, (double)x);
        if (strtof(s, NULL) == x) break;
    }
    wn_jw_raw(w, s, strlen(s));
}

/* Early stopping: the validation loss has not improved on its best by more
 * than margin in the last `patience` evaluations (from the history, so a
 * resumed run decides the same). */
static int stalled(const run *r, int patience, double margin)
{
    if (!r->n_val) return 0;
    double best = r->vals[0].loss;
    int since = 0;
    for (uint64_t i = 1; i < r->n_val; i++) {
        if (r->vals[i].loss < best - margin) {
            best = r->vals[i].loss;
            since = 0;
        } else {
            since++;
        }
    }
    return since >= patience;
}

/* The validation loss over the first --val-batches batches. With MPI each
 * rank takes its rows of every batch (as in training; fewer or none in a
 * short last batch) and the sums are reduced; one rank takes whole batches. */
static wn_err validation(run *r, float *loss, wn_errbuf *err)
{
    double s[2] = {0, 0}; /* sum of loss * weight, sum of weights */
    wn_loader_rewind(r->val);
    for (int b = 0; b < r->o.val_batches; b++) {
        int n = wn_loader_next(r->val, r->B, r->in, r->tg, r->w);
        if (!n) break;
        int lo = r->rank * r->rows, cnt = n - lo < r->rows ? n - lo : r->rows;
        if (cnt <= 0) continue;
        size_t off = (size_t)lo * (size_t)r->T;
        float l;
        wn_err e = r->g ? wn_gpt_cuda_forward(r->g, r->in + off, r->tg + off, r->w + off, cnt, r->T, &l, err)
                        : wn_gpt_forward(r->m, r->in + off, r->tg + off, r->w + off, cnt, r->T, &l);
        if (e) return r->g ? e : wn_fail(err, e, "validation forward failed");
        double ws = 0;
        for (size_t i = 0; i < (size_t)cnt * (size_t)r->T; i++) ws += r->w[off + i];
        s[0] += (double)l * ws;
        s[1] += ws;
    }
    wn_mpi_allreduce_sum_f64(s, 2);
    *loss = s[1] > 0 ? (float)(s[0] / s[1]) : 0.0f;
    return WN_OK;
}

static wn_err add_val(run *r, uint32_t step, float loss, wn_errbuf *err)
{
    if (r->n_val == r->cap_val) {
        uint64_t nc = r->cap_val ? 2 * r->cap_val : 64;
        void *p = wn_realloc(r->vals, nc * sizeof *r->vals);
        if (!p) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
        r->vals = p;
        r->cap_val = nc;
    }
    r->vals[r->n_val].step = step;
    r->vals[r->n_val].loss = loss;
    r->n_val++;
    return WN_OK;
}

/* Prints PROMPT + a sampled continuation of SAMPLE_TOKENS tokens (stdout). */
static wn_err sample(run *r, const char *when, wn_errbuf *err)
{
    if (r->rank) return WN_OK; /* rank 0 prints for all */
    /* on the CPU model, with the device's parameters */
    if (r->g) {
        wn_err e = wn_gpt_cuda_download(r->g, r->m, WN_GPT_CUDA_PARAMS, err);
        if (e) return e;
    }
    wn_tok_ctx *c = wn_tok_ctx_new(r->tok);
    wn_ids ids = {0};
    wn_buf text = {0};
    wn_err e = c ? wn_tokenizer_encode(c, r->o.prompt, strlen(r->o.prompt), 0, &ids) : WN_ERR_NOMEM;
    if (!e && !ids.n) {
        int64_t eot = wn_tokenizer_special(r->tok, "<|endoftext|>");
        e = wn_ids_push(&ids, eot >= 0 ? (uint32_t)eot : 0);
    }
    size_t n_prompt = ids.n;
    for (size_t i = 0; !e && i < ids.n; i++)
        if (ids.p[i] >= (uint32_t)r->cfg.vocab) e = WN_ERR_INPUT;
    for (int k = 0; !e && k < SAMPLE_TOKENS; k++) {
        size_t n = ids.n < (size_t)r->cfg.context ? ids.n : (size_t)r->cfg.context;
        if ((e = wn_gpt_forward(r->m, ids.p + ids.n - n, NULL, NULL, 1, (int)n, NULL))) break;
        e = wn_ids_push(&ids, wn_gpt_sample(r->m, 0, (int)n, 1.0f, 40, &r->rng));
    }
    if (!e) {
        wn_buf_puts(&text, r->o.prompt);
        if (wn_tokenizer_decode(r->tok, ids.p + n_prompt, ids.n - n_prompt, &text))
            wn_buf_puts(&text, " [ids outside the tokenizer's vocabulary]");
        printf("sample (%s): %s\n", when, text.p ? text.p : "");
        fflush(stdout);
    }
    if (e == WN_ERR_INPUT) e = wn_fail(err, e, "--prompt: a token id is outside the model's vocabulary of %d", r->cfg.vocab);
    else if (e) wn_fail(err, e, "sampling failed: %s", wn_err_name(e));
    wn_ids_free(&ids);
    wn_buf_free(&text);
    wn_tok_ctx_free(c);
    return e;
}

static int sink_file(void *arg, const void *p, size_t n) { return fwrite(p, 1, n, arg) != n; }

static void put64(uint8_t *h, int i, uint64_t v)
{
    for (int k = 0; k < 8; k++) h[8 * i + k] = (uint8_t)(v >> (8 * k));
}
static uint64_t get64(const uint8_t *h, int i)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = v << 8 | h[8 * i + k];
    return v;
}

/* The 8-bit moments' section of optimizer.bin version 2: a safetensors
 * image (see the top comment). */
#define A8_NAMES(x) {"adam8." x ".code", "adam8." x ".absmax", "adam8." x ".map"}
static const char *const a8_names[2][3] = {A8_NAMES("m"), A8_NAMES("v")};

static wn_err write_adam8(run *r, FILE *f, wn_errbuf *err)
{
    wn_gpt_adam8_state a;
    if (!wn_gpt_adam8(r->m, &a)) return wn_fail(err, WN_ERR_INTERNAL, "8-bit moments expected");
    const wn_st_out t[6] = {
        {a8_names[0][0], "U8", 1, {(int64_t)a.n}, a.code_m},
        {a8_names[0][1], "F32", 1, {(int64_t)a.nblocks}, a.absmax_m},
        {a8_names[0][2], "F32", 1, {256}, a.maps},
        {a8_names[1][0], "U8", 1, {(int64_t)a.n}, a.code_v},
        {a8_names[1][1], "F32", 1, {(int64_t)a.nblocks}, a.absmax_v},
        {a8_names[1][2], "F32", 1, {256}, a.maps + 256},
    };
    const char *meta[] = {"format", "winnow-adam8", "block_size", "256", "order", "model.h tensor order",
                          "map_m", "dynamic tree, signed (Dettmers et al. 2022)", "map_v",
                          "dynamic tree, unsigned (sign bit used for the fraction)"};
    return wn_st_write(t, 6, meta, 5, sink_file, f, err);
}

/* Reads the 8-bit moments' image (p, n) of optimizer.bin `path` into the
 * model, after checking every tensor's dtype and size and that its maps are
 * this build's. */
static wn_err read_adam8(run *r, const char *path, const uint8_t *p, size_t n, wn_errbuf *err)
{
    wn_gpt_adam8_state a;
    if (!wn_gpt_adam8(r->m, &a))
        return wn_fail(err, WN_ERR_STATE, "%s holds 8-bit AdamW moments but the run's options say float", path);
    wn_st_file f;
    char what[4300];
    snprintf(what, sizeof what, "%s (8-bit moments)", path);
    wn_err e = wn_st_parse(&f, p, n, what, err);
    if (e) return e;
    void *dst[2][3] = {{a.code_m, a.absmax_m, NULL}, {a.code_v, a.absmax_v, NULL}};
    const size_t count[3] = {a.n, a.nblocks, 256};
    for (int k = 0; k < 2 && !e; k++)
        for (int j = 0; j < 3 && !e; j++) {
            const wn_st_entry *t = wn_st_find(&f, a8_names[k][j]);
            const char *dtype = j ? "F32" : "U8";
            if (!t || strcmp(t->dtype, dtype) || t->ndim != 1 || (uint64_t)t->shape[0] != count[j]) {
                e = wn_fail(err, WN_ERR_STATE, "%s: tensor %s missing, or not %s[%zu] (the model's shape)", what,
                            a8_names[k][j], dtype, count[j]);
            } else if (j == 2) {
                if (memcmp(f.data + t->begin, a.maps + 256 * k, 256 * sizeof(float)))
                    e = wn_fail(err, WN_ERR_STATE, "%s: %s differs from this winnow's quantization map", what,
                                a8_names[k][j]);
            } else {
                memcpy(dst[k][j], f.data + t->begin, t->end - t->begin);
            }
        }
    wn_st_close(&f);
    return e;
}

/* Writes optimizer.bin.tmp (fsynced; renamed by the caller). */
static wn_err write_optimizer(run *r, const char *tmp, wn_errbuf *err)
{
    wn_buf js = {0};
    wn_jw w;
    wn_jw_init(&w, &js, 0);
    opts_json(&r->o, &w);
    if (!js.p) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    size_t np = wn_gpt_num_params(r->m);
    wn_loader_pos pos = wn_loader_tell(r->train);
    double wall = r->wall_before + (wn_now() - r->wall_start);
    uint64_t wall_bits;
    memcpy(&wall_bits, &wall, 8);
    uint8_t h[OPT_HEADER] = {0};
    int adam8 = wn_gpt_adam8(r->m, NULL);
    uint32_t mv[2] = {OPT_MAGIC, adam8 ? OPT_VERSION_ADAM8 : OPT_VERSION};
    memcpy(h, mv, 8);
    put64(h, 1, r->step);
    put64(h, 2, np);
    put64(h, 3, pos.epoch);
    put64(h, 4, pos.next);
    put64(h, 5, r->rng);
    put64(h, 6, r->tokens);
    put64(h, 7, r->n_val);
    put64(h, 8, js.len);
    put64(h, 9, wall_bits);
    FILE *f = fopen(tmp, "wb");
    wn_err e = WN_OK;
    if (!f) {
        e = wn_fail(err, WN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    int bad = sink_file(f, h, sizeof h) || sink_file(f, js.p, js.len) ||
              sink_file(f, r->train_loss, r->step * sizeof(float));
    for (uint64_t i = 0; i < r->n_val && !bad; i++) {
        uint32_t s = r->vals[i].step;
        float l = r->vals[i].loss;
        bad = sink_file(f, &s, 4) || sink_file(f, &l, 4);
    }
    if (adam8 && !bad && (e = write_adam8(r, f, err))) {
        fclose(f);
        remove(tmp);
        goto done;
    }
    if (!adam8)
        bad = bad || sink_file(f, wn_gpt_adam_m(r->m), np * sizeof(float)) ||
              sink_file(f, wn_gpt_adam_v(r->m), np * sizeof(float));
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) {
        e = wn_fail(err, WN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        remove(tmp);
    }
done:
    wn_buf_free(&js);
    return e;
}

/* Reads an optimizer.bin: fills the run's step, history, moments, options
 * (into *saved) and data position. Needs r->m for the sizes when load_state
 * (else reads the header and options only: *step and saved). */
static wn_err read_optimizer(run *r, const char *path, int load_state, opts *saved, uint64_t *step,
                             wn_loader_pos *pos, wn_errbuf *err)
{
    wn_buf b = {0};
    wn_err e = wn_read_file(path, &b, err);
    if (e) return e;
    const uint8_t *h = (const uint8_t *)b.p;
    uint32_t mv[2] = {0, 0};
    if (b.len >= OPT_HEADER) memcpy(mv, h, 8);
    if (b.len < OPT_HEADER || mv[0] != OPT_MAGIC || (mv[1] != OPT_VERSION && mv[1] != OPT_VERSION_ADAM8)) {
        e = wn_fail(err, WN_ERR_STATE, "%s: not a winnow optimizer state (magic %u version %u, %zu bytes)", path, mv[0],
                    mv[1], b.len);
        goto done;
    }
    int adam8 = mv[1] == OPT_VERSION_ADAM8;
    uint64_t st = get64(h, 1), np = get64(h, 2), nval = get64(h, 7), jl = get64(h, 8);
    /* every count is bounded by the size before anything is sized by it; the
     * moments: 2 x 4 np bytes, or (8-bit) a safetensors image checked below */
    uint64_t avail = b.len - OPT_HEADER, rest = 0;
    int bad = jl > avail || st > (avail - jl) / 4 || nval > (avail - jl - 4 * st) / 8;
    if (!bad) rest = avail - jl - 4 * st - 8 * nval;
    if (bad || (adam8 ? rest < 8 : np > rest / 8 || rest != 8 * np)) {
        e = wn_fail(err, WN_ERR_STATE, "%s: %zu bytes do not match its header (step %llu, %llu parameters): truncated?",
                    path, b.len, (unsigned long long)st, (unsigned long long)np);
        goto done;
    }
    *step = st;
    const char *js = b.p + OPT_HEADER;
    if ((e = opts_from_json(saved, js, jl, path, err))) goto done;
    if (!load_state) goto done;
    if (np != wn_gpt_num_params(r->m)) {
        e = wn_fail(err, WN_ERR_STATE, "%s: %llu parameters, the model has %zu", path, (unsigned long long)np,
                    wn_gpt_num_params(r->m));
        goto done;
    }
    pos->epoch = get64(h, 3);
    pos->next = get64(h, 4);
    r->rng = get64(h, 5);
    r->tokens = get64(h, 6);
    uint64_t wb = get64(h, 9);
    memcpy(&r->wall_before, &wb, 8);
    const uint8_t *p = (const uint8_t *)js + jl;
    memcpy(r->train_loss, p, st * 4);
    p += st * 4;
    for (uint64_t i = 0; i < nval && !e; i++, p += 8) {
        uint32_t s;
        float l;
        memcpy(&s, p, 4);
        memcpy(&l, p + 4, 4);
        e = add_val(r, s, l, err);
    }
    if (e) goto done;
    if (adam8) {
        e = read_adam8(r, path, p, (size_t)rest, err);
    } else if (wn_gpt_adam8(r->m, NULL)) {
        e = wn_fail(err, WN_ERR_STATE, "%s holds float AdamW moments but the run's options say --adam-8bit", path);
    } else {
        memcpy(wn_gpt_adam_m(r->m), p, np * 4);
        memcpy(wn_gpt_adam_v(r->m), p + np * 4, np * 4);
    }
done:
    wn_buf_free(&b);
    return e;
}

/* Model FLOPs utilisation at tok_per_s: wn_gpt_flops_per_step's FLOPs per
 * token over the device's peak (0 when unknown or on the CPU). */
static double mfu(const run *r, double tok_per_s)
{
    if (!r->g || r->peak_flops <= 0) return 0;
    double per_token = wn_gpt_flops_per_step(r->m, r->B, r->T) / ((double)r->B * r->T);
    return per_token * tok_per_s / (r->peak_flops * (r->n_gpus > 1 ? r->n_gpus : 1));
}

static wn_err write_train_json(run *r, int complete, wn_errbuf *err)
{
    wn_buf b = {0};
    wn_jw w;
    wn_jw_init(&w, &b, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "steps"); wn_jw_u64(&w, r->step);
    wn_jw_key(&w, "tokens"); wn_jw_u64(&w, r->tokens);
    wn_jw_key(&w, "train_loss");
    wn_jw_arr_begin(&w);
    for (uint64_t i = 0; i < r->step; i++) jw_float(&w, r->train_loss[i]);
    wn_jw_arr_end(&w);
    wn_jw_key(&w, "val_loss");
    wn_jw_arr_begin(&w);
    for (uint64_t i = 0; i < r->n_val; i++) {
        wn_jw_arr_begin(&w);
        wn_jw_u64(&w, r->vals[i].step);
        jw_float(&w, r->vals[i].loss);
        wn_jw_arr_end(&w);
    }
    wn_jw_arr_end(&w);
    wn_jw_key(&w, "final_val_loss");
    if (r->n_val && r->vals[r->n_val - 1].step == r->step) jw_float(&w, r->vals[r->n_val - 1].loss);
    else wn_jw_null(&w);
    wn_jw_key(&w, "complete"); wn_jw_bool(&w, complete);
    if (r->early) { /* what stopping early saved */
        uint64_t left = (uint64_t)r->o.steps - r->step, bt = (uint64_t)r->B * (uint64_t)r->T;
        wn_jw_key(&w, "early_stopped"); wn_jw_bool(&w, 1);
        wn_jw_key(&w, "steps_saved"); wn_jw_u64(&w, left);
        wn_jw_key(&w, "tokens_saved"); wn_jw_u64(&w, left * bt);
        wn_jw_key(&w, "flops_saved"); wn_jw_f64(&w, (double)left * wn_gpt_flops_per_step(r->m, r->B, r->T));
    }
    wn_jw_key(&w, "final_train_loss");
    if (r->step) jw_float(&w, r->train_loss[r->step - 1]);
    else wn_jw_null(&w);
    wn_jw_key(&w, "tokens_per_second"); wn_jw_f64(&w, round(r->tok_per_s * 10) / 10);
    wn_jw_key(&w, "wall_seconds"); wn_jw_f64(&w, round((r->wall_before + wn_now() - r->wall_start) * 1000) / 1000);
    wn_jw_key(&w, "unigram_entropy_bits"); wn_jw_f64(&w, round(r->entropy_bits * 1e6) / 1e6);
    { /* what it cost: CPU, FLOPs (analytic: forward + backward per step), energy */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                     ru.ru_stime.tv_usec / 1e6;
        wn_jw_key(&w, "cpu_seconds_last_session"); wn_jw_f64(&w, cpu);
        wn_jw_key(&w, "flops"); wn_jw_f64(&w, (double)r->step * wn_gpt_flops_per_step(r->m, r->B, r->T));
        /* on the GPU: the train loop of this session (steps, validations,
         * checkpoints) counts as GPU time, and NVML measures its energy */
        wn_energy_gpu_part gp = {wn_now() - r->wall_start, -1};
        if (r->g) {
            gp.joules = wn_energy_gpu_since(&r->gpu0);
            wn_jw_key(&w, "gpu_seconds_last_session"); wn_jw_f64(&w, gp.seconds);
        }
        uint64_t uj;
        wn_energy_write_parts(&w, r->have_rapl && wn_energy_rapl(&uj) ? wn_energy_rapl_joules(r->rapl0, uj) : -1, cpu,
                              r->g ? &gp : NULL);
    }
    wn_jw_key(&w, "unigram_entropy_nats"); wn_jw_f64(&w, round(r->entropy_bits * M_LN2 * 1e6) / 1e6);
    wn_jw_key(&w, "model");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "vocab"); wn_jw_i64(&w, r->cfg.vocab);
    wn_jw_key(&w, "context"); wn_jw_i64(&w, r->cfg.context);
    wn_jw_key(&w, "layers"); wn_jw_i64(&w, r->cfg.layers);
    wn_jw_key(&w, "heads"); wn_jw_i64(&w, r->cfg.heads);
    wn_jw_key(&w, "dim"); wn_jw_i64(&w, r->cfg.dim);
    wn_jw_key(&w, "params"); wn_jw_u64(&w, wn_gpt_num_params(r->m));
    wn_jw_key(&w, "flops_per_step"); wn_jw_f64(&w, wn_gpt_flops_per_step(r->m, r->B, r->T));
    wn_jw_obj_end(&w);
    { /* the CPU model's memory plan for this run's options, and what they save */
        wn_gpt_mem mem, plain;
        wn_gpt_memory(&r->cfg, r->B, r->T, mem_opts(&r->o), &mem);
        wn_gpt_memory(&r->cfg, r->B, r->T, 0, &plain);
        wn_jw_key(&w, "memory");
        wn_jw_obj_begin(&w);
        wn_jw_key(&w, "adam_8bit"); wn_jw_bool(&w, r->o.adam_8bit);
        wn_jw_key(&w, "recompute"); wn_jw_bool(&w, r->o.recompute);
        wn_jw_key(&w, "params_bytes"); wn_jw_f64(&w, mem.params);
        wn_jw_key(&w, "grads_bytes"); wn_jw_f64(&w, mem.grads);
        wn_jw_key(&w, "optimizer_bytes"); wn_jw_f64(&w, mem.optimizer);
        wn_jw_key(&w, "activations_bytes"); wn_jw_f64(&w, mem.activations);
        wn_jw_key(&w, "scratch_bytes"); wn_jw_f64(&w, mem.scratch);
        wn_jw_key(&w, "total_bytes"); wn_jw_f64(&w, mem.total);
        wn_jw_key(&w, "optimizer_saved_bytes"); wn_jw_f64(&w, plain.optimizer - mem.optimizer);
        wn_jw_key(&w, "activations_saved_bytes"); wn_jw_f64(&w, plain.activations - mem.activations);
        wn_jw_key(&w, "saved_bytes"); wn_jw_f64(&w, plain.total - mem.total);
        wn_jw_obj_end(&w);
    }
    wn_jw_key(&w, "data");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "shards"); wn_jw_i64(&w, wn_loader_num_shards(r->train));
    wn_jw_key(&w, "tokens"); wn_jw_u64(&w, wn_loader_num_tokens(r->train));
    wn_jw_key(&w, "sequences"); wn_jw_u64(&w, wn_loader_num_sequences(r->train));
    wn_jw_key(&w, "token_weights"); wn_jw_bool(&w, wn_loader_has_weights(r->train));
    wn_jw_key(&w, "epochs"); wn_jw_f64(&w, round((double)r->tokens / (double)r->T / (double)wn_loader_num_sequences(r->train) * 1000) / 1000);
    if (r->val) {
        wn_jw_key(&w, "val_tokens"); wn_jw_u64(&w, wn_loader_num_tokens(r->val));
    }
    wn_jw_obj_end(&w);
    wn_jw_key(&w, "device"); wn_jw_str(&w, r->g ? "cuda" : "cpu");
    { /* MPI ranks: each trained on rows / B of every step's tokens; validation split by rows */
        wn_jw_key(&w, "ranks"); wn_jw_i64(&w, r->ranks);
        wn_jw_key(&w, "sequences_per_rank"); wn_jw_i64(&w, r->rows);
        wn_jw_key(&w, "tokens_per_rank");
        wn_jw_arr_begin(&w);
        for (int k = 0; k < r->ranks; k++) wn_jw_u64(&w, r->tokens / (uint64_t)r->ranks);
        wn_jw_arr_end(&w);
        wn_jw_key(&w, "allreduce"); wn_jw_str(&w, r->allreduce ? r->allreduce : "none");
        if (r->nccl) {
            wn_jw_key(&w, "nccl_version"); wn_jw_str(&w, wn_nccl_version());
        }
        if (r->g && r->rank_gpu) { /* the CUDA device of every rank, and how many distinct GPUs */
            wn_jw_key(&w, "rank_devices");
            wn_jw_arr_begin(&w);
            for (int k = 0; k < r->ranks; k++) wn_jw_i64(&w, r->rank_gpu[k]);
            wn_jw_arr_end(&w);
            wn_jw_key(&w, "gpus"); wn_jw_i64(&w, r->n_gpus);
        }
    }
    if (r->g) {
        const char *peak_what;
        double peak = wn_gpt_cuda_peak_flops(r->g, &peak_what);
        wn_jw_key(&w, "device_name"); wn_jw_str(&w, wn_gpt_cuda_device(r->g));
        wn_jw_key(&w, "tf32"); wn_jw_bool(&w, r->o.tf32);
        wn_jw_key(&w, "precision"); wn_jw_str(&w, r->o.bf16 ? "bf16" : r->o.tf32 ? "tf32" : "fp32");
        size_t free_b = 0, total_b = 0; /* device memory in use now: model, activations, cuBLAS workspace */
        if (!wn_cuda_mem_info(&free_b, &total_b)) {
            wn_jw_key(&w, "device_memory_used_bytes"); wn_jw_u64(&w, (uint64_t)(total_b - free_b));
        }
        wn_jw_key(&w, "peak_flops"); wn_jw_f64(&w, peak);
        wn_jw_key(&w, "peak_flops_what"); wn_jw_str(&w, peak_what);
        wn_jw_key(&w, "mfu");
        if (peak > 0) wn_jw_f64(&w, round(mfu(r, r->tok_per_s) * 1e5) / 1e5);
        else wn_jw_null(&w);
    }
#ifdef _OPENMP
    wn_jw_key(&w, "threads"); wn_jw_i64(&w, omp_get_max_threads());
#endif
    wn_jw_key(&w, "config");
    opts_json(&r->o, &w);
    wn_jw_obj_end(&w);
    wn_err e = wn_buf_putc(&b, '\n');
    if (e) e = wn_fail(err, e, "out of memory");
    else e = wn_write_atomic(r->path_json, b.p, b.len, err);
    wn_buf_free(&b);
    return e;
}

/* ---- data parallelism (MPI ranks) ------------------------------------------------ */

/* Combines the ranks' gradients after each backward. Rank k's forward gave
 * the loss num_k / den_k over its rows (num = sum w nll, den = sum w) and its
 * backward the gradient of that. The whole batch's loss is
 * sum num_k / sum den_k, whose gradient is sum_k (den_k / sum den) grad_k:
 * each rank scales its gradient by its share of the weight, then the
 * gradients are summed over ranks. Gradient clipping, which follows, then
 * sees the global norm. dp_share reduces the sums and returns this rank's
 * factor den_k / sum den and (in *loss) the whole batch's loss, the same on
 * every rank; w: this rank's rows' weights (1 without a weights sidecar, as
 * the loader fills them), nll: their per-token losses. */
static float dp_share(run *r, const float *w, const float *nll, float *loss)
{
    size_t n = (size_t)r->rows * (size_t)r->T;
    double s[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        s[0] += (double)w[i] * nll[i];
        s[1] += w[i];
    }
    double den = s[1];
    wn_mpi_allreduce_sum_f64(s, 2);
    *loss = s[1] > 0 ? (float)(s[0] / s[1]) : 0.0f;
    return s[1] > 0 ? (float)(den / s[1]) : 0.0f;
}

/* The host model's gradients: one array of n_params floats in tensor order. */
static float *host_grads(run *r)
{
    wn_tensor *t;
    int nt = wn_gpt_tensors(r->m, &t);
    WN_CHECK(t[nt - 1].grad + t[nt - 1].size == t[0].grad + wn_gpt_num_params(r->m)); /* one array */
    return t[0].grad;
}

/* The CPU model's combination; returns the whole batch's loss. */
static float dp_combine(run *r, const float *w)
{
    size_t np = wn_gpt_num_params(r->m);
    float loss, k = dp_share(r, w, wn_gpt_token_nll(r->m), &loss), *g = host_grads(r);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < np; i++) g[i] *= k;
    wn_mpi_allreduce_sum_f32(g, np);
    return loss;
}

/* The same on the device (r->g), in two parts: dp_share after the forward
 * (the backward uses up its per-token losses), then after the backward this,
 * with k = dp_share's factor and the run's all-reduce: NCCL on the device
 * gradients, or staged through the host model's gradient array (which the
 * GPU path does not otherwise use). With one rank (a forced back-end, to
 * exercise it) k is 1 and the sum a copy. */
static wn_err dp_combine_cuda(run *r, float k, wn_errbuf *err)
{
    wn_err e = k != 1.0f ? wn_gpt_cuda_scale_grad(r->g, k, err) : WN_OK;
    if (e) return e;
    if (r->nccl) {
        size_t n;
        float *d = wn_gpt_cuda_grad_data(r->g, &n);
        return wn_nccl_allreduce_sum_f32(r->nccl, d, n, err);
    }
    float *h = host_grads(r);
    if ((e = wn_gpt_cuda_grad_copy(r->g, h, 1, err))) return e;
    wn_mpi_allreduce_sum_f32(h, wn_gpt_num_params(r->m));
    return wn_gpt_cuda_grad_copy(r->g, h, 0, err);
}

/* The ranks' parameters must stay bit-identical (same gradients, same
 * AdamW step); a checksum of them reduced with min and max proves it. Every
 * rank calls it at every checkpoint, and after every step with the
 * environment variable WINNOW_MPI_CHECK=1 (the tests). */
static wn_err dp_verify(run *r, wn_errbuf *err)
{
    if (r->ranks == 1) return WN_OK;
    if (r->g) { /* the device's parameters (each rank downloads its own) */
        wn_err e = wn_gpt_cuda_download(r->g, r->m, WN_GPT_CUDA_PARAMS, err);
        if (e) return e;
    }
    wn_tensor *t;
    wn_gpt_tensors(r->m, &t);
    int64_t lo = (int64_t)XXH64(t[0].data, wn_gpt_num_params(r->m) * sizeof(float), 0), hi = lo;
    wn_mpi_allreduce_min_i64(&lo, 1);
    wn_mpi_allreduce_max_i64(&hi, 1);
    if (lo == hi) return WN_OK;
    r->sym_err = 1; /* every rank sees it */
    return wn_fail(err, WN_ERR_INTERNAL, "step %llu: the parameters differ across the %d ranks (checksums %016llx .. "
                   "%016llx): the gradient all-reduce did not give every rank the same sum",
                   (unsigned long long)r->step, r->ranks, (unsigned long long)lo, (unsigned long long)hi);
}

/* Stopping together. Before training starts the ranks meet at agreement
 * points (dp_agree: after rank 0 settles a checkpoint to resume, and at the
 * end of start-up): each says whether it failed, and if any did, all stop
 * there; the lowest failing rank prints its message, the others stop
 * quietly with its exit status, and nobody is left waiting in a collective.
 * A rank that fails between two points reaches the next one from the
 * cleanup path (dp_stop). Once training runs, an error that every rank hits
 * at the same step (divergence, the checksum) is printed by rank 0 and all
 * return; any other error (a failed forward, rank 0's checkpoint write)
 * happened on one rank while the others wait in a collective, so that rank
 * prints it with its number and calls MPI_Abort, which ends the job. */
static wn_err dp_agree(run *r, wn_err e, wn_errbuf *err)
{
    if (r->ranks == 1) return e;
    /* lowest failing rank and its error code in one value (codes are < 16) */
    static_assert(WN_ERR__COUNT <= 16, "error codes fit 4 bits");
    int64_t key = e ? (int64_t)r->rank * 16 + e : (int64_t)r->ranks * 16;
    wn_mpi_allreduce_min_i64(&key, 1);
    if (key == (int64_t)r->ranks * 16) return WN_OK;
    r->stopped = 1;
    if (key / 16 == r->rank) return e;
    r->quiet = 1;
    return wn_fail(err, (wn_err)(key % 16), "rank %lld failed", (long long)(key / 16));
}

/* From the cleanup path with an error e on this rank (see dp_agree). */
static wn_err dp_stop(run *r, wn_err e, wn_errbuf *err)
{
    if (r->ranks == 1 || r->stopped) return e;
    if (!r->synced) return dp_agree(r, e, err);
    if (r->sym_err) {
        r->quiet = r->rank != 0;
        return e;
    }
    fprintf(stderr, "winnow train: rank %d of %d: %s; stopping all ranks\n", r->rank, r->ranks,
            err->msg[0] ? err->msg : wn_err_name(e));
    wn_mpi_abort(e == WN_ERR_USAGE ? 2 : 1);
}

/* The start-up checks of a run across ranks: each takes B / R sequences. */
static wn_err dp_check(run *r, wn_errbuf *err)
{
    if (r->ranks == 1) return WN_OK;
    if (r->auto_batch)
        return wn_fail(err, WN_ERR_USAGE, "--batch 0 (planned batch) under MPI: the ranks may see different free "
                       "memory; give --batch N, a multiple of the %d ranks", r->ranks);
    if (r->B % r->ranks)
        return wn_fail(err, WN_ERR_USAGE, "--batch %d is not a multiple of the %d MPI ranks: each rank trains on "
                       "batch / ranks sequences of every step; use --batch %d or %d", r->B, r->ranks,
                       r->B > r->ranks ? (r->B / r->ranks) * r->ranks : r->ranks,
                       (r->B / r->ranks + 1) * r->ranks);
    return WN_OK;
}

/* --device cuda or auto: may this run use GPUs, and which? Every rank needs
 * a CUDA build and a visible device; rank k takes device (local rank mod the
 * devices it sees), so the ranks of a node spread over its GPUs, or share
 * them when there are more ranks than GPUs. The ranks decide together (a
 * collective, called where every rank is: before any other start-up work):
 * *use = 1 when all can; otherwise auto trains on the CPU (rank 0 says why,
 * under MPI) and cuda fails. Returns 0, or the exit status (the lowest
 * failing rank printed why). */
static int pick_gpu(run *r, int forced, int *use)
{
    *use = 0;
    r->local_how = "one process";
    r->local_rank = r->ranks > 1 ? wn_mpi_local_rank(&r->local_how) : 0;
    int n = wn_cuda_built() ? wn_cuda_device_count() : 0;
    char buf[256];
    const char *why = NULL; /* why this rank cannot */
    if (!wn_cuda_built()) {
        why = "the CUDA trainer is not built yet: this winnow was compiled without CUDA (nvcc not found, or make "
              "CUDA=0); rebuild with nvcc, or use --device cpu or auto";
    } else if (n < 1) {
        why = "no CUDA device is visible (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them); use --device cpu "
              "or auto";
    } else if (wn_cuda_set_device(r->gpu = r->local_rank % n)) {
        snprintf(buf, sizeof buf, "cannot make CUDA device %d current (local rank %d, %d visible)", r->gpu,
                 r->local_rank, n);
        why = buf;
    }
    int64_t first = why ? r->rank : r->ranks, some = !why; /* the lowest rank that cannot; does any? */
    if (r->ranks > 1) {
        wn_mpi_allreduce_min_i64(&first, 1);
        wn_mpi_allreduce_max_i64(&some, 1);
    }
    if (first == r->ranks) {
        *use = 1;
        return 0;
    }
    if (!forced) { /* silent when no rank has a GPU, as with one process */
        if (some && r->rank == 0)
            fprintf(stderr, "winnow train: --device auto: rank %lld has no usable GPU; all %d ranks train on the CPU\n",
                    (long long)first, r->ranks);
        return 0;
    }
    if (first == r->rank) {
        if (r->ranks > 1) fprintf(stderr, "winnow train: rank %d of %d: --device cuda: %s\n", r->rank, r->ranks, why);
        else fprintf(stderr, "winnow train: --device cuda: %s\n", why);
    }
    return 2;
}

/* The gradient all-reduce, chosen by every rank together once start-up is
 * through (see the top comment). CPU: MPI on the host arrays. GPU: NCCL with
 * several ranks and WINNOW_NCCL unset, or with WINNOW_NCCL=1, when
 * libnccl.so.2 loads on every rank and no two ranks use the same GPU (NCCL
 * refuses that: ranks are matched by host name and PCI bus id); otherwise
 * the host-staged path, which any placement can take. WINNOW_NCCL=1 where
 * NCCL cannot run is an error; WINNOW_NCCL=0 takes the host path, with one
 * rank too (a copy there and back, to exercise it). Rank 0 says what it
 * chose and why on stderr. */
static wn_err dp_setup(run *r, wn_errbuf *err)
{
    const char *env = getenv("WINNOW_NCCL");
    int force = env && *env ? *env - '0' : -1; /* "0" or "1", checked at the start */
    if (!r->g) {
        r->allreduce = r->ranks > 1 ? "mpi" : "none";
        if (r->ranks > 1 && r->rank == 0) fprintf(stderr, "winnow train: gradient all-reduce: MPI, on the CPU\n");
        return WN_OK;
    }
    /* which GPU every rank drives: host name + PCI bus id, hashed */
    char host[256] = "", bus[64], id[400];
    gethostname(host, sizeof host - 1);
    if (wn_cuda_device_pci_bus_id(r->gpu, bus, sizeof bus)) snprintf(bus, sizeof bus, "cuda:%d", r->gpu);
    snprintf(id, sizeof id, "%s/%s", host, bus);
    int64_t *key = wn_malloc((size_t)r->ranks * sizeof *key);
    r->rank_gpu = wn_malloc((size_t)r->ranks * sizeof *r->rank_gpu);
    if (!key || !r->rank_gpu) {
        wn_free(key);
        return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    }
    wn_mpi_allgather_i64((int64_t)XXH64(id, strlen(id), 0), key);
    wn_mpi_allgather_i64(r->gpu, r->rank_gpu);
    int share_a = -1, share_b = -1; /* the first two ranks on one GPU */
    r->n_gpus = 0;
    for (int a = 0; a < r->ranks; a++) {
        int b = 0;
        while (b < a && key[b] != key[a]) b++;
        if (b == a) r->n_gpus++;
        else if (share_a < 0) share_a = b, share_b = a;
    }
    wn_free(key);
    int try_nccl = force == 1 || (force < 0 && r->ranks > 1);
    wn_errbuf lerr = {{0}};
    wn_err le = try_nccl ? wn_nccl_load(&lerr) : WN_OK;
    int64_t bad = le ? r->rank : r->ranks; /* the lowest rank without NCCL */
    if (try_nccl) wn_mpi_allreduce_min_i64(&bad, 1);
    char why[700] = "";
    if (!try_nccl && force < 0) { /* one rank: nothing to sum */
        r->allreduce = "none";
        return WN_OK;
    }
    if (!try_nccl) snprintf(why, sizeof why, "WINNOW_NCCL=0");
    else if (share_a >= 0)
        snprintf(why, sizeof why, "ranks %d and %d share a GPU (cuda:%lld of one node), which NCCL refuses", share_a,
                 share_b, (long long)r->rank_gpu[share_b]);
    else if (bad < r->ranks && bad == r->rank) snprintf(why, sizeof why, "%.600s", lerr.msg);
    else if (bad < r->ranks) snprintf(why, sizeof why, "rank %lld cannot load NCCL", (long long)bad);
    wn_err e = WN_OK;
    if (try_nccl && !why[0]) {
        if ((e = wn_nccl_open(&r->nccl, err))) return e; /* one rank's failure: the caller stops the job */
        r->allreduce = "nccl";
    } else if (force == 1) {
        if (share_a < 0 && bad < r->ranks) { /* that rank knows why: it prints, the others stop quietly */
            r->stopped = 1;
            if (bad == r->rank) return wn_fail(err, WN_ERR_USAGE, "WINNOW_NCCL=1: %s", lerr.msg);
            r->quiet = 1;
            return WN_ERR_USAGE;
        }
        r->sym_err = 1; /* every rank knows: rank 0 prints */
        return wn_fail(err, WN_ERR_USAGE, "WINNOW_NCCL=1: %s; unset it or set WINNOW_NCCL=0 for the host-staged "
                       "all-reduce, or start at most one rank per GPU", why);
    } else {
        r->allreduce = "host";
    }
    if (r->rank == 0 && (r->ranks > 1 || force >= 0)) {
        char devs[200] = "";
        size_t used = 0;
        for (int k = 0; k < r->ranks && used + 24 < sizeof devs; k++)
            used += (size_t)snprintf(devs + used, sizeof devs - used, "%s%lld", k ? "," : "", (long long)r->rank_gpu[k]);
        if (used + 24 >= sizeof devs) snprintf(devs + used, sizeof devs - used, ",...");
        if (r->nccl)
            fprintf(stderr, "winnow train: gradient all-reduce: NCCL %s, GPU to GPU\n", wn_nccl_version());
        else
            fprintf(stderr, "winnow train: gradient all-reduce: host-staged (GPU -> host, MPI_Allreduce, -> GPU), not "
                    "NCCL: %s\n", why);
        fprintf(stderr, "winnow train: %d rank%s on %d GPU%s: CUDA device of each rank %s (local rank mod visible "
                "devices; local rank from %s)\n", r->ranks, r->ranks == 1 ? "" : "s", r->n_gpus,
                r->n_gpus == 1 ? "" : "s", devs, r->local_how);
    }
    return WN_OK;
}

/* A test hook: WINNOW_MPI_TEST_FAIL=RANK:STEP makes rank RANK fail at the
 * start of step STEP (1-based), as a crashed or broken rank would, so that the
 * tests can check that the job stops and says which rank failed and why. */
static wn_err dp_injected_failure(const run *r, wn_errbuf *err)
{
    const char *v = getenv("WINNOW_MPI_TEST_FAIL");
    int rank, step;
    if (!v || sscanf(v, "%d:%d", &rank, &step) != 2 || rank != r->rank || (uint64_t)step != r->step + 1)
        return WN_OK;
    return wn_fail(err, WN_ERR_IO, "step %d: injected failure (WINNOW_MPI_TEST_FAIL=%s)", step, v);
}

static wn_err checkpoint(run *r, int complete, wn_errbuf *err)
{
    wn_err e = dp_verify(r, err);
    if (e || r->rank) return e; /* rank 0 writes */
    char tmp[4300], stepbuf[32];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->path_opt);
    snprintf(stepbuf, sizeof stepbuf, "%llu", (unsigned long long)r->step);
    const char *meta[] = {"winnow_step", stepbuf};
    e = r->g ? wn_gpt_cuda_download(r->g, r->m, WN_GPT_CUDA_PARAMS | WN_GPT_CUDA_MOMENTS, err) : WN_OK;
    if (!e) e = write_optimizer(r, tmp, err);
    if (!e) e = wn_st_gpt_save(r->m, r->path_model, meta, 1, err);
    if (!e && rename(tmp, r->path_opt)) e = wn_fail(err, WN_ERR_IO, "%s: rename failed: %s", tmp, strerror(errno));
    if (!e) e = write_train_json(r, complete, err);
    return e;
}

/* Makes DIR's optimizer.bin the state that goes with its model.safetensors
 * (both at the same step), finishing a checkpoint that a crash interrupted
 * between its two renames (see the top comment); sets r->step. */
static wn_err settle_checkpoint(run *r, wn_errbuf *err)
{
    if (!wn_exists(r->path_model))
        return wn_fail(err, WN_ERR_STATE, "%s: no checkpoint to resume (model.safetensors and optimizer.bin)", r->o.out);
    wn_st_file f;
    wn_err e = wn_st_open(&f, r->path_model, err);
    if (e) return e;
    wn_buf sb = {0};
    unsigned long long model_step = 0;
    int ok = wn_st_meta(&f, "winnow_step", &sb) && sscanf(sb.p, "%llu", &model_step) == 1;
    wn_buf_free(&sb);
    wn_st_close(&f);
    if (!ok)
        return wn_fail(err, WN_ERR_STATE, "%s: no winnow_step in its metadata: not a checkpoint of `winnow train`",
                       r->path_model);
    opts scratch;
    opts_defaults(&scratch);
    uint64_t st = 0, st2 = 0;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->path_opt);
    wn_errbuf ignored;
    int have = wn_exists(r->path_opt);
    if (have && (e = read_optimizer(r, r->path_opt, 0, &scratch, &st, NULL, err))) goto done;
    if (have && st == model_step) goto done;
    if (wn_exists(tmp) && !read_optimizer(r, tmp, 0, &scratch, &st2, NULL, &ignored) && st2 == model_step) {
        if (rename(tmp, r->path_opt)) e = wn_fail(err, WN_ERR_IO, "%s: rename failed: %s", tmp, strerror(errno));
        st = st2;
    } else if (!have) {
        e = wn_fail(err, WN_ERR_STATE, "%s: no optimizer.bin beside model.safetensors: nothing to resume", r->o.out);
    } else {
        e = wn_fail(err, WN_ERR_STATE, "%s is at step %llu but %s at step %llu: the checkpoint is inconsistent",
                    r->path_model, model_step, r->path_opt, (unsigned long long)st);
    }
done:
    opts_free(&scratch);
    r->step = st;
    return e;
}

static int fail(wn_err e, const wn_errbuf *err)
{
    const char *msg = err->msg[0] ? err->msg : wn_err_name(e);
    if (wn_mpi_size() > 1) fprintf(stderr, "winnow train: rank %d of %d: %s\n", wn_mpi_rank(), wn_mpi_size(), msg);
    else fprintf(stderr, "winnow train: %s\n", msg);
    return e == WN_ERR_USAGE ? 2 : 1;
}

static int bad_usage(const char *fmt, const char *arg)
{
    if (wn_mpi_rank()) return 2; /* the same command line fails on every rank: rank 0 says why */
    fprintf(stderr, "winnow train: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(`winnow train --help` lists the options)\n");
    return 2;
}

int wn_cmd_train(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(usage, stdout); return 0; }

    run r;
    memset(&r, 0, sizeof r);
    opts_defaults(&r.o);
    r.rank = wn_mpi_rank();
    r.ranks = wn_mpi_size();
    wn_errbuf err = {{0}};
    wn_err e = WN_OK;
    int given[N_FLAGS] = {0};
    for (int i = 0; i < argc; i++) {
        int k = 0;
        while (k < N_FLAGS && strcmp(argv[i], flags[k].flag)) k++;
        if (k == N_FLAGS) {
            opts_free(&r.o);
            return bad_usage(argv[i][0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", argv[i]);
        }
        given[k] = 1;
        if (flags[k].type == F_FLAG) { *(int *)((char *)&r.o + flags[k].off) = 1; continue; }
        if (i + 1 >= argc) {
            opts_free(&r.o);
            return bad_usage("%s needs a value", argv[i]);
        }
        if ((e = set_flag(&r.o, k, argv[++i], &err))) { /* the same on every rank: rank 0 says it */
            opts_free(&r.o);
            return r.rank ? 2 : fail(e, &err);
        }
    }
    opts *o = &r.o;
    if (o->plan) {
        int rc = plan(o, &err);
        opts_free(o);
        return rc;
    }
    const char *device = o->device ? o->device : "auto";
    if (strcmp(device, "cpu") && strcmp(device, "auto") && strcmp(device, "cuda")) {
        int rc = bad_usage("--device: expected cpu, cuda or auto, got '%s'", device); /* before device is freed */
        opts_free(o);
        return rc;
    }
    const char *nccl_env = getenv("WINNOW_NCCL");
    if (nccl_env && *nccl_env && strcmp(nccl_env, "0") && strcmp(nccl_env, "1")) {
        opts_free(o);
        return bad_usage("WINNOW_NCCL=%s: expected 0 (the host-staged gradient all-reduce) or 1 (NCCL); unset, "
                         "NCCL when it can run", nccl_env);
    }
    /* cuda: every rank must have CUDA and see a device; auto: cuda when they do */
    int want_gpu = 0;
    if (strcmp(device, "cpu")) {
        int rc = pick_gpu(&r, !strcmp(device, "cuda"), &want_gpu);
        if (rc) {
            opts_free(o);
            return rc;
        }
    }
    if (nccl_env && !strcmp(nccl_env, "1") && !want_gpu) {
        opts_free(o);
        return bad_usage("%s", "WINNOW_NCCL=1: NCCL sums the gradients of the GPU trainer, but this run trains on "
                               "the CPU (--device cpu, or no usable GPU)");
    }
    if (o->bf16 && !want_gpu) {
        if (!strcmp(device, "cpu")) {
            opts_free(o);
            return bad_usage("%s", "--bf16 needs the GPU (--device cuda or auto): the CPU trainer is fp32 only");
        }
        fprintf(stderr, "winnow train: --bf16: no GPU in use; training on the CPU in fp32\n");
    }
    if (!o->out) { opts_free(o); return bad_usage("%s", "--out DIR is required"); }
    snprintf(r.path_model, sizeof r.path_model, "%s/model.safetensors", o->out);
    snprintf(r.path_opt, sizeof r.path_opt, "%s/optimizer.bin", o->out);
    snprintf(r.path_json, sizeof r.path_json, "%s/train.json", o->out);
#ifdef _OPENMP
    if (o->threads) omp_set_num_threads(o->threads);
#endif

    wn_loader_pos pos = {0, 0};
    if (o->resume) {
        /* The saved options first, then the command line over them; what
         * fixes the model or the data order cannot change. */
        /* rank 0 first: settling may rename optimizer.bin.tmp, which the others then read */
        if (r.rank == 0) e = settle_checkpoint(&r, &err);
        if ((e = dp_agree(&r, e, &err))) goto out;
        if (r.rank && (e = settle_checkpoint(&r, &err))) goto out;
        opts saved;
        opts_defaults(&saved);
        uint64_t st;
        if ((e = read_optimizer(&r, r.path_opt, 0, &saved, &st, NULL, &err))) { opts_free(&saved); goto out; }
        for (int k = 0; k < N_FLAGS && !e; k++) {
            if (!flags[k].save) continue;
            if (given[k] && flags[k].lock && !same_value(&saved, o, k))
                e = wn_fail(&err, WN_ERR_USAGE, "%s differs from the run in %s: a resumed run keeps its data, model, "
                            "batch and seed", flags[k].flag, o->out);
            if (!given[k]) { /* move the saved value over */
                void *dst = (char *)o + flags[k].off, *src = (char *)&saved + flags[k].off;
                size_t sz = flags[k].type == F_STR ? sizeof(char *) : flags[k].type == F_F64 ? sizeof(double)
                          : flags[k].type == F_I64 ? sizeof(int64_t) : sizeof(int);
                if (flags[k].type == F_STR) wn_free(*(char **)dst);
                memcpy(dst, src, sz);
                if (flags[k].type == F_STR) *(char **)src = NULL;
            }
        }
        opts_free(&saved);
        if (e) goto out;
    }
    if (!o->data) { e = wn_fail(&err, WN_ERR_USAGE, "--data GLOB is required"); goto out; }
    if (o->prompt && !o->tokenizer) { e = wn_fail(&err, WN_ERR_USAGE, "--prompt needs --tokenizer"); goto out; }
    if (!o->resume) {
        if (o->warmup < 0) o->warmup = o->steps / 10 < 100 ? o->steps / 10 : 100;
        if (o->min_lr < 0) o->min_lr = o->lr / 10;
        if (wn_exists(r.path_model) || wn_exists(r.path_opt)) {
            e = wn_fail(&err, WN_ERR_USAGE, "%s already holds a training run: --resume continues it; or choose another --out",
                        o->out);
            goto out;
        }
    }
    if (o->warmup < 0) o->warmup = 0;
    if (o->min_lr < 0) o->min_lr = 0;
    if ((e = wn_mkdir_p(o->out, &err))) goto out;

    if (o->tokenizer && (e = wn_tokenizer_load(&r.tok, o->tokenizer, &err))) goto out;

    /* The model: resumed, from --init, or new. */
    if (o->resume) {
        if ((e = wn_st_gpt_load_file(&r.m, r.path_model, 0, &err))) goto out;
        r.cfg = *wn_gpt_cfg(r.m);
        if ((uint64_t)o->steps < r.step) {
            e = wn_fail(&err, WN_ERR_USAGE, "--steps %d: the run in %s is already at step %llu", o->steps, o->out,
                        (unsigned long long)r.step);
            goto out;
        }
        r.T = o->context;
    } else if (o->init) {
        if ((e = wn_st_gpt_load_file(&r.m, o->init, given[flag_idx("--heads")] ? o->heads : 0, &err))) goto out;
        r.cfg = *wn_gpt_cfg(r.m);
        const int shape_flags[] = {flag_idx("--layers"), flag_idx("--heads"), flag_idx("--dim")};
        const int have[] = {r.cfg.layers, r.cfg.heads, r.cfg.dim};
        for (int k = 0; k < 3; k++)
            if (given[shape_flags[k]] && *(int *)((char *)o + flags[shape_flags[k]].off) != have[k]) {
                e = wn_fail(&err, WN_ERR_USAGE, "%s %d differs from --init %s (%d)", flags[shape_flags[k]].flag,
                            *(int *)((char *)o + flags[shape_flags[k]].off), o->init, have[k]);
                goto out;
            }
        o->layers = r.cfg.layers;
        o->heads = r.cfg.heads;
        o->dim = r.cfg.dim;
        if (!given[flag_idx("--context")]) o->context = r.cfg.context < o->context ? r.cfg.context : o->context;
        if (o->context > r.cfg.context) {
            e = wn_fail(&err, WN_ERR_USAGE, "--context %d: %s holds at most %d positions", o->context, o->init, r.cfg.context);
            goto out;
        }
        r.T = o->context;
    } else {
        if (o->dim % o->heads) {
            e = wn_fail(&err, WN_ERR_USAGE, "--heads %d does not divide --dim %d", o->heads, o->dim);
            goto out;
        }
        r.T = o->context;
    }
    r.B = o->batch;
    r.auto_batch = !o->batch; /* decided once the vocabulary is known */
    if ((e = dp_check(&r, &err))) goto out;

    /* Data: shards, vocabulary, token statistics. */
    if ((e = wn_loader_open(&r.train, o->data, r.T, 1, (uint64_t)o->seed, &err))) goto out;
    if (o->val && (e = wn_loader_open(&r.val, o->val, r.T, 0, 0, &err))) goto out;
    uint32_t max_id;
    uint32_t vocab = r.m ? (uint32_t)r.cfg.vocab : 0;
    if ((e = wn_loader_scan(r.train, vocab, &max_id, &r.entropy_bits, &err))) goto out;
    if (!r.m) {
        const char *from = "the largest token id + 1";
        vocab = max_id + 1;
        if (r.tok) vocab = (uint32_t)wn_tokenizer_vocab_size(r.tok), from = "--tokenizer";
        else if (wn_loader_index_vocab(r.train)) vocab = (uint32_t)wn_loader_index_vocab(r.train), from = "index.json";
        if (max_id >= vocab) {
            e = wn_fail(&err, WN_ERR_INPUT, "%s: token id %u in the data is outside the vocabulary of %u (from %s)", o->data,
                        max_id, vocab, from);
            goto out;
        }
        r.cfg = (wn_gpt_config){(int)vocab, o->context, o->layers, o->heads, o->dim};
        if ((e = wn_gpt_new(&r.m, &r.cfg, (uint64_t)o->seed, &err))) goto out;
    }
    if (r.val) {
        double ignored;
        if ((e = wn_loader_scan(r.val, (uint32_t)r.cfg.vocab, &max_id, &ignored, &err))) goto out;
    }
    /* memory options, before a resume reads the moments into the model */
    if (o->adam_8bit && wn_gpt_set_adam8(r.m, 1)) {
        e = wn_fail(&err, WN_ERR_NOMEM, "--adam-8bit: out of memory for the 8-bit moments");
        goto out;
    }
    wn_gpt_set_recompute(r.m, o->recompute);
    if (!o->resume) r.rng = (uint64_t)o->seed * 0x9E3779B97F4A7C15ULL + 1;
    if (r.auto_batch) { /* --batch 0: the largest that fits the memory */
        double budget;
        const char *what;
        if (!plan_budget(o, &budget, &what)) {
            e = wn_fail(&err, WN_ERR_USAGE, "--batch 0: cannot tell how much memory there is; give --memory SIZE");
            goto out;
        }
        r.B = plan_batch(&r.cfg, r.T, mem_opts(o), budget);
        if (!r.B) {
            e = wn_fail(&err, WN_ERR_USAGE, "--batch 0: not even one sequence of %d tokens fits %.1f MiB (%s)", r.T,
                        budget / (1024.0 * 1024.0), what);
            goto out;
        }
        o->batch = r.B;
        fprintf(stderr, "winnow train: --batch 0: batch %d, the largest that fits %.1f MiB (%s)\n", r.B,
                budget / (1024.0 * 1024.0), what);
    }

    r.rows = r.B / r.ranks;
    size_t bt = (size_t)r.B * (size_t)r.T;
    r.in = wn_malloc(bt * sizeof *r.in);
    r.tg = wn_malloc(bt * sizeof *r.tg);
    r.w = wn_malloc(bt * sizeof *r.w);
    r.train_loss = wn_malloc(((size_t)o->steps + 1) * sizeof *r.train_loss);
    if (!r.in || !r.tg || !r.w || !r.train_loss) { e = wn_fail(&err, WN_ERR_NOMEM, "out of memory"); goto out; }
    if (o->resume) { /* history, moments, data position, RNG */
        opts scratch;
        opts_defaults(&scratch);
        uint64_t st;
        e = read_optimizer(&r, r.path_opt, 1, &scratch, &st, &pos, &err);
        opts_free(&scratch);
        if (!e && st != r.step) e = wn_fail(&err, WN_ERR_STATE, "%s changed while being read", r.path_opt);
        if (!e) e = wn_loader_seek(r.train, pos, &err);
        if (e) goto out;
    }

    if (want_gpu) {
        e = wn_gpt_cuda_new(&r.g, r.m, o->tf32, &err);
        if (!e && o->bf16 && (e = wn_gpt_cuda_set_bf16(r.g, 1, &err))) goto out;
        if (e && (!strcmp(device, "cuda") || r.ranks > 1)) goto out; /* ranks: all on GPUs or none */
        if (e) { /* auto: a device is there but unusable; say so and use the CPU */
            fprintf(stderr, "winnow train: --device auto: %s; training on the CPU\n", err.msg);
            e = WN_OK;
            err.msg[0] = 0;
        } else {
            const char *peak_what;
            r.peak_flops = wn_gpt_cuda_peak_flops(r.g, &peak_what);
            if (r.rank == 0) /* under MPI: rank 0's device; dp_setup lists every rank's */
                fprintf(stderr, "winnow train: device cuda: %s; %s matrix products; %s%s\n", wn_gpt_cuda_device(r.g),
                        o->bf16 ? "bf16 (fp32 accumulation)" : o->tf32 ? "TF32 (tensor cores)" : "full fp32 (TF32 off)",
                        r.peak_flops > 0 ? "MFU against the " : "no MFU: ", peak_what);
            if (o->recompute && r.rank == 0)
                fprintf(stderr, "winnow train: --recompute: the GPU path does not recompute activations (yet); it "
                                "stores them all as without the flag\n");
        }
    }
    /* every rank got here: from now on all take the same steps (see dp_agree) */
    if ((e = dp_agree(&r, WN_OK, &err))) goto out;
    r.synced = 1;
    if (r.rank == 0 && r.ranks > 1)
        fprintf(stderr, "winnow train: %d MPI ranks, %d sequences each per step; validation split across ranks\n",
                r.ranks, r.rows);
    if ((e = dp_setup(&r, &err))) goto out;
    if (r.rank == 0)
    fprintf(stderr,
            "winnow train: model L=%d H=%d C=%d T=%d V=%d (%.2f M parameters); data %llu tokens in %d shard%s, "
            "unigram entropy %.3f bits (%.3f nats); B=%d, %d steps%s\n",
            r.cfg.layers, r.cfg.heads, r.cfg.dim, r.T, r.cfg.vocab, (double)wn_gpt_num_params(r.m) / 1e6,
            (unsigned long long)wn_loader_num_tokens(r.train), wn_loader_num_shards(r.train),
            wn_loader_num_shards(r.train) == 1 ? "" : "s", r.entropy_bits, r.entropy_bits * M_LN2, r.B, o->steps,
            o->resume ? " (resumed)" : "");

    r.progress = isatty(2) && r.rank == 0;
    r.wall_start = wn_now();
    r.have_rapl = wn_energy_rapl(&r.rapl0);
    if (r.g) r.gpu0 = wn_energy_gpu_start();
    if (r.val && !o->resume) {
        float vl;
        if ((e = validation(&r, &vl, &err)) || (e = add_val(&r, 0, vl, &err))) goto out;
        if (r.rank == 0) fprintf(stderr, "step %d/%d: val loss %.4f\n", 0, o->steps, (double)vl);
    }
    uint64_t end = o->stop_after > 0 && (uint64_t)o->stop_after < (uint64_t)o->steps ? (uint64_t)o->stop_after
                                                                                      : (uint64_t)o->steps;
    double t_train = 0;
    uint64_t tok_run = 0;
    int has_w = wn_loader_has_weights(r.train);
    wn_adamw adam = {0, 0.9f, 0.95f, 1e-8f, (float)o->weight_decay};
    size_t off = (size_t)r.rank * (size_t)r.rows * (size_t)r.T; /* this rank's rows of each batch */
    int check_every_step = getenv("WINNOW_MPI_CHECK") && !strcmp(getenv("WINNOW_MPI_CHECK"), "1");
    while (r.step < end) {
        double t0 = wn_now();
        adam.lr = wn_lr_schedule((int)r.step, o->warmup, o->steps, (float)o->lr, (float)o->min_lr);
        wn_loader_next(r.train, r.B, r.in, r.tg, r.w);
        float loss, norm;
        if (r.g) { /* the same step on the device; sync so that dt is the step's time */
            int dp = strcmp(r.allreduce, "none") != 0;
            float k = 1;
            if ((e = dp_injected_failure(&r, &err)) || (e = wn_gpt_cuda_zero_grad(r.g, &err)) ||
                (e = wn_gpt_cuda_forward(r.g, r.in + off, r.tg + off, has_w ? r.w + off : NULL, r.rows, r.T, &loss,
                                         &err)))
                goto out;
            if (dp) k = dp_share(&r, r.w + off, wn_gpt_cuda_token_nll(r.g), &loss);
            if ((e = wn_gpt_cuda_backward(r.g, &err)) || (dp && (e = dp_combine_cuda(&r, k, &err))) ||
                (e = wn_gpt_cuda_clip_grad(r.g, (float)o->grad_clip, &norm, &err)) ||
                (e = wn_gpt_cuda_adamw(r.g, &adam, (int)r.step + 1, &err)) || (e = wn_gpt_cuda_sync(r.g, &err)))
                goto out;
        } else {
            if ((e = dp_injected_failure(&r, &err))) goto out;
            wn_gpt_zero_grad(r.m);
            if ((e = wn_gpt_forward(r.m, r.in + off, r.tg + off, has_w ? r.w + off : NULL, r.rows, r.T, &loss))) {
                e = wn_fail(&err, e, "step %llu: forward failed: %s", (unsigned long long)r.step + 1, wn_err_name(e));
                goto out;
            }
            if ((e = wn_gpt_backward(r.m))) goto out;
            if (r.ranks > 1) loss = dp_combine(&r, r.w + off);
            norm = wn_gpt_clip_grad(r.m, (float)o->grad_clip);
            wn_gpt_adamw(r.m, &adam, (int)r.step + 1);
        }
        r.train_loss[r.step++] = loss;
        r.tokens += bt;
        double dt = wn_now() - t0;
        t_train += dt;
        tok_run += bt;
        r.tok_per_s = (double)tok_run / t_train;
        if (check_every_step && (e = dp_verify(&r, &err))) goto out;
        if (!isfinite(loss)) {
            r.sym_err = 1; /* the loss is the whole batch's: every rank stops here */
            e = wn_fail(&err, WN_ERR_INPUT, "step %llu: the loss is %f: training diverged (lower --lr?)",
                        (unsigned long long)r.step, (double)loss);
            goto out;
        }
        int at_val = r.val && (r.step % (uint64_t)o->val_every == 0 || r.step == (uint64_t)o->steps);
        float vl = 0;
        if (at_val && ((e = validation(&r, &vl, &err)) || (e = add_val(&r, (uint32_t)r.step, vl, &err)))) goto out;
        if (at_val && o->early_stop && r.step < (uint64_t)o->steps && stalled(&r, o->early_stop, o->early_margin)) {
            r.early = 1;
            break;
        }
        char mf[32] = ""; /* cuda with a known peak: MFU after tok/s */
        if (r.progress) {
            if (r.peak_flops > 0) snprintf(mf, sizeof mf, " | MFU %.1f%%", 100 * mfu(&r, (double)bt / dt));
            fprintf(stderr, "step %llu/%d | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s%s | %.0f ms\n",
                    (unsigned long long)r.step, o->steps, (double)loss, (double)adam.lr, (double)norm, (double)bt / dt,
                    mf, dt * 1e3);
        }
        if (r.rank == 0 && (at_val || (!r.progress && !r.val && r.step % (uint64_t)(o->steps / 10 ? o->steps / 10 : 1) == 0))) {
            char vs[48] = "";
            if (at_val) snprintf(vs, sizeof vs, ", val loss %.4f", (double)vl);
            if (r.peak_flops > 0) snprintf(mf, sizeof mf, ", MFU %.1f%%", 100 * mfu(&r, r.tok_per_s));
            fprintf(stderr, "step %llu/%d: train loss %.4f%s, %.0f tok/s%s\n", (unsigned long long)r.step, o->steps,
                    (double)loss, vs, r.tok_per_s, mf);
        }
        if (r.tok && o->prompt && o->sample_every && r.step % (uint64_t)o->sample_every == 0 && r.step != (uint64_t)o->steps) {
            char when[64];
            snprintf(when, sizeof when, "step %llu", (unsigned long long)r.step);
            if ((e = sample(&r, when, &err))) goto out;
        }
        if (o->checkpoint_every && r.step % (uint64_t)o->checkpoint_every == 0 && r.step < end &&
            (e = checkpoint(&r, 0, &err)))
            goto out;
    }
    int complete = r.step == (uint64_t)o->steps || r.early;
    if ((e = checkpoint(&r, complete, &err))) goto out;
    if (r.early && r.rank == 0)
        fprintf(stderr, "winnow train: early stop: no validation improvement of more than %g in %d evaluations; "
                        "%llu steps (%llu tokens) not run\n",
                o->early_margin, o->early_stop, (unsigned long long)(o->steps - r.step),
                (unsigned long long)((o->steps - r.step) * bt));
    if (complete && r.tok && o->prompt) {
        char when[64];
        snprintf(when, sizeof when, "step %llu, end", (unsigned long long)r.step);
        if ((e = sample(&r, when, &err))) goto out;
    }
    if (r.rank == 0) {
        fprintf(stderr, "winnow train: %s at step %llu/%d", complete ? "done" : "stopped", (unsigned long long)r.step,
                o->steps);
        if (r.step) fprintf(stderr, ": train loss %.4f", (double)r.train_loss[r.step - 1]);
        if (r.n_val) fprintf(stderr, "%s val loss %.4f", r.step ? "," : ":", (double)r.vals[r.n_val - 1].loss);
        fprintf(stderr, "; %.0f tokens/s", r.tok_per_s);
        if (r.ranks > 1) fprintf(stderr, " (%d ranks)", r.ranks);
        if (r.peak_flops > 0) fprintf(stderr, ", MFU %.1f%%", 100 * mfu(&r, r.tok_per_s));
        fprintf(stderr, "; wrote %s\n", o->out);
    }
out:
    if (e) e = dp_stop(&r, e, &err); /* may end the job (MPI_Abort) */
    wn_loader_free(r.train);
    wn_loader_free(r.val);
    wn_nccl_close(r.nccl);
    wn_gpt_cuda_free(r.g);
    wn_gpt_free(r.m);
    wn_free(r.rank_gpu);
    wn_tokenizer_free(r.tok);
    wn_free(r.in);
    wn_free(r.tg);
    wn_free(r.w);
    wn_free(r.train_loss);
    wn_free(r.vals);
    opts_free(&r.o);
    if (e && r.quiet) return e == WN_ERR_USAGE ? 2 : 1; /* another rank printed why */
    return e ? fail(e, &err) : 0;
}
