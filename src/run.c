/*
 * run.c - the streaming loop, checkpoints, resume, reports and progress
 * (run.h).
 *
 * One thread drives the loop: fill a batch from the readers, pass it through
 * every stage in order (each may use OpenMP inside the batch), write what is
 * left. Output order is input order. Counters live in one `stats` per step:
 * [0] the readers, [1..n] the stages, [n+1] the writer.
 */
#include "run.h"

#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../kernels/device.h"
#include "energy.h"
#include "fs.h"
#include "json.h"
#include "mpi.h"
#include "reader.h"
#include "writer.h"

#include <xxhash.h>

#define DROP_SAMPLES 10
#define HIST_BUCKETS 40
/* What the run's batch keeps between fills, in batch sizes (wn_batch_trim):
 * a fill holds about twice the batch's text (text and raw record) with
 * the buffers' growth slack on top. */
#define BATCH_KEEP 4

typedef struct {
    char *reason;
    uint64_t count;
    char *samples[DROP_SAMPLES];
    int n_samples;
} drop_stat;

typedef struct {
    char name[64];
    uint64_t docs_in, docs_out, bytes_in, bytes_out, modified;
    uint64_t tokens_in, tokens_out;
    int tokens_seen; /* documents carried tokens: report tokens_in/out */
    drop_stat *drops;
    int n_drops;
    double wall, cpu;
    uint64_t hist[HIST_BUCKETS]; /* output documents by floor(log2(text bytes)) + 1; [0] = empty */
    /* a stage on the GPU: NVML joules over its calls, and how many calls
     * were measured or not (all sessions; checkpointed) */
    double gpu_j;
    uint64_t gpu_read, gpu_missed;
    uint64_t mpi_bytes; /* under MPI: payload bytes this rank sent for the step */
    uint64_t mem_peak;  /* merged reports: the largest of the ranks' peaks */
} stats;

typedef struct {
    wn_manifest *m;
    const wn_run_opts *o;
    char dir[4096];
    wn_run_info info;
    const char **ds_names, **ds_paths; /* info's dataset lists */
    const char **file_inputs;          /* info's input spec of each file */
    wn_stage *st;
    int n;
    stats *stats; /* n + 2 */
    wn_writer *w;
    wn_reader *rd;
    int file;             /* input file being read */
    uint64_t skip_to;     /* resume: records of `file` already consumed */
    uint64_t raw_done;    /* bytes of input files finished */
    uint64_t total_size;
    int ckpt_seq;
    /* MPI (README "Scale-out (MPI)"): this rank reads input files
     * [file_begin, file_end); with more than one rank the records go to the
     * outbox (a plain JSONL file in the rank's state directory) and the
     * shards are cut from all ranks' outboxes at the end (commit_outboxes) */
    int rank, ranks;
    int file_begin, file_end;
    char state_base[4200]; /* RUN_DIR/state, or RUN_DIR/state/rank-NNNN */
    FILE *outbox;
    char outbox_path[4400];
    uint64_t outbox_len;
    int shards_total; /* document shards of the whole run */
    wn_buf line;
    uint64_t read_since_ckpt; /* text bytes read since the last checkpoint */
    int have_rapl;
    uint64_t rapl0; /* energy counters at the start of the session */
    wn_energy_gpu_mark gpu0; /* GPU energy counters at the start of the session */
    double gpu_wall;         /* this session's wall seconds in stages on the GPU */
    int resumed_from;
    double t0, last_progress;
    int progress_lines;
    int progress;
    wn_doc scratch;
} run;

/* ---- counters ------------------------------------------------------------ */

static drop_stat *drop_slot(stats *s, const char *reason)
{
    for (int i = 0; i < s->n_drops; i++)
        if (!strcmp(s->drops[i].reason, reason)) return &s->drops[i];
    drop_stat *d = wn_realloc(s->drops, (size_t)(s->n_drops + 1) * sizeof *d);
    if (!d) return NULL;
    s->drops = d;
    d = &s->drops[s->n_drops];
    memset(d, 0, sizeof *d);
    d->reason = wn_strdup(reason);
    if (!d->reason) return NULL;
    s->n_drops++;
    return d;
}

static wn_err count_drop(stats *s, const char *reason, const char *sample, size_t n, uint64_t count)
{
    drop_stat *d = drop_slot(s, reason);
    if (!d) return WN_ERR_NOMEM;
    d->count += count;
    if (sample && d->n_samples < DROP_SAMPLES) {
        d->samples[d->n_samples] = wn_strndup(sample, n > 300 ? 300 : n);
        if (!d->samples[d->n_samples]) return WN_ERR_NOMEM;
        d->n_samples++;
    }
    return WN_OK;
}

static void stats_free(stats *s)
{
    for (int i = 0; i < s->n_drops; i++) {
        wn_free(s->drops[i].reason);
        for (int k = 0; k < s->drops[i].n_samples; k++) wn_free(s->drops[i].samples[k]);
    }
    wn_free(s->drops);
    s->drops = NULL;
    s->n_drops = 0;
}

static int hist_bucket(size_t len)
{
    int b = 0;
    while (len && b < HIST_BUCKETS - 1) { len >>= 1; b++; }
    return b;
}

/* The counters shared by checkpoints and reports. */
static void stats_write(const stats *s, wn_jw *w)
{
    wn_jw_key(w, "docs_in"); wn_jw_u64(w, s->docs_in);
    wn_jw_key(w, "docs_out"); wn_jw_u64(w, s->docs_out);
    wn_jw_key(w, "bytes_in"); wn_jw_u64(w, s->bytes_in);
    wn_jw_key(w, "bytes_out"); wn_jw_u64(w, s->bytes_out);
    if (s->tokens_seen) {
        wn_jw_key(w, "tokens_in"); wn_jw_u64(w, s->tokens_in);
        wn_jw_key(w, "tokens_out"); wn_jw_u64(w, s->tokens_out);
    }
    wn_jw_key(w, "dropped");
    wn_jw_obj_begin(w);
    for (int i = 0; i < s->n_drops; i++) { wn_jw_key(w, s->drops[i].reason); wn_jw_u64(w, s->drops[i].count); }
    wn_jw_obj_end(w);
    wn_jw_key(w, "modified"); wn_jw_u64(w, s->modified);
    wn_jw_key(w, "wall_seconds"); wn_jw_f64(w, s->wall);
    wn_jw_key(w, "cpu_seconds"); wn_jw_f64(w, s->cpu);
    if (s->mpi_bytes) {
        wn_jw_key(w, "mpi_bytes_sent"); wn_jw_u64(w, s->mpi_bytes);
    }
    wn_jw_key(w, "dropped_samples");
    wn_jw_obj_begin(w);
    for (int i = 0; i < s->n_drops; i++) {
        wn_jw_key(w, s->drops[i].reason);
        wn_jw_arr_begin(w);
        for (int k = 0; k < s->drops[i].n_samples; k++) wn_jw_str(w, s->drops[i].samples[k]);
        wn_jw_arr_end(w);
    }
    wn_jw_obj_end(w);
    wn_jw_key(w, "length_histogram");
    wn_jw_obj_begin(w);
    wn_jw_key(w, "unit"); wn_jw_str(w, "text bytes of output documents; bucket k counts lengths in [2^(k-1), 2^k), bucket 0 empty texts");
    wn_jw_key(w, "counts");
    wn_jw_arr_begin(w);
    int top = HIST_BUCKETS;
    while (top > 1 && !s->hist[top - 1]) top--;
    for (int k = 0; k < top; k++) wn_jw_u64(w, s->hist[k]);
    wn_jw_arr_end(w);
    wn_jw_obj_end(w);
}

/* The stage runs its work on the GPU (it says so when it opens). */
static int on_gpu(const wn_stage *st) { return !strcmp(st->device_used, "cuda"); }

/* A checkpoint's copy of a GPU stage's energy counters (its report carries
 * them inside "energy"); nothing for the others. */
static void stats_write_gpu(const stats *s, wn_jw *w)
{
    if (!s->gpu_read && !s->gpu_missed) return;
    wn_jw_key(w, "gpu_joules"); wn_jw_f64(w, s->gpu_j);
    wn_jw_key(w, "gpu_calls_measured"); wn_jw_u64(w, s->gpu_read);
    wn_jw_key(w, "gpu_calls_unmeasured"); wn_jw_u64(w, s->gpu_missed);
}

/* The joules a GPU stage's report states: measured only if every call was
 * (a partial sum would undercount); -1 when not. */
static double stage_gpu_joules(const stats *s)
{
    uint64_t mj;
    if (s->gpu_missed) return -1;
    if (s->gpu_read) return s->gpu_j;
    return wn_energy_gpu(&mj) ? 0 : -1; /* never called: nothing spent, if it could have been measured */
}

static uint64_t get_u64(const char *obj, size_t n, const char *key)
{
    wn_span v;
    int64_t x = 0;
    if (wn_json_get(obj, n, key, &v)) wn_json_to_i64(v, &x);
    return (uint64_t)x;
}

static double get_f64(const char *obj, size_t n, const char *key)
{
    wn_span v;
    double x = 0;
    if (wn_json_get(obj, n, key, &v)) wn_json_to_double(v, &x);
    return x;
}

/* Restores counters written by stats_write and stats_write_gpu. */
static wn_err stats_read(stats *s, wn_span o)
{
    s->docs_in = get_u64(o.p, o.n, "docs_in");
    s->docs_out = get_u64(o.p, o.n, "docs_out");
    s->bytes_in = get_u64(o.p, o.n, "bytes_in");
    s->bytes_out = get_u64(o.p, o.n, "bytes_out");
    s->modified = get_u64(o.p, o.n, "modified");
    wn_span tk;
    s->tokens_seen = wn_json_get(o.p, o.n, "tokens_in", &tk);
    s->tokens_in = get_u64(o.p, o.n, "tokens_in");
    s->tokens_out = get_u64(o.p, o.n, "tokens_out");
    s->wall = get_f64(o.p, o.n, "wall_seconds");
    s->cpu = get_f64(o.p, o.n, "cpu_seconds");
    s->gpu_j = get_f64(o.p, o.n, "gpu_joules");
    s->gpu_read = get_u64(o.p, o.n, "gpu_calls_measured");
    s->gpu_missed = get_u64(o.p, o.n, "gpu_calls_unmeasured");
    s->mpi_bytes = get_u64(o.p, o.n, "mpi_bytes_sent");
    wn_span v, k, x, samples = {0};
    wn_json_iter it, it2;
    wn_buf key = {0};
    wn_err e = WN_OK;
    wn_json_get(o.p, o.n, "dropped_samples", &samples);
    if (wn_json_get(o.p, o.n, "dropped", &v)) {
        wn_json_iter_init(&it, v.p, v.n);
        while (!e && wn_json_iter_next(&it, &k, &x)) {
            int64_t c = 0;
            wn_buf_clear(&key);
            if ((e = wn_json_decode_string(k, &key))) break;
            wn_json_to_i64(x, &c);
            if ((e = count_drop(s, key.p, NULL, 0, (uint64_t)c))) break;
            wn_span arr, item;
            if (samples.p && wn_json_get(samples.p, samples.n, key.p, &arr)) {
                drop_stat *d = drop_slot(s, key.p);
                wn_json_items_init(&it2, arr.p, arr.n);
                while (d && d->n_samples < DROP_SAMPLES && wn_json_items_next(&it2, &item)) {
                    wn_buf sample = {0};
                    if ((e = wn_json_decode_string(item, &sample)) || !sample.p) {
                        wn_buf_free(&sample);
                        break;
                    }
                    d->samples[d->n_samples++] = sample.p;
                }
            }
        }
    }
    wn_span h;
    if (wn_json_get(o.p, o.n, "length_histogram", &h) && wn_json_get(h.p, h.n, "counts", &v)) {
        wn_json_items_init(&it2, v.p, v.n);
        for (int b = 0; b < HIST_BUCKETS && wn_json_items_next(&it2, &x); b++) {
            int64_t c = 0;
            wn_json_to_i64(x, &c);
            s->hist[b] = (uint64_t)c;
        }
    }
    wn_buf_free(&key);
    return e;
}

/* ---- reports ------------------------------------------------------------- */

static void param_write(wn_jw *w, const wn_param_def *p, const wn_value *v)
{
    wn_jw_key(w, p->name);
    switch (p->type) {
    case WN_P_BOOL: wn_jw_bool(w, v->b); break;
    case WN_P_INT:
    case WN_P_SIZE: wn_jw_i64(w, v->i); break;
    case WN_P_FLOAT: wn_jw_f64(w, v->f); break;
    default: wn_jw_str(w, v->s); break;
    }
}

/* Every rank calls it for every step in order (a stage's report method may
 * sum its counters across ranks); rank 0 writes the file. rank_stats, when
 * not NULL, holds each rank's counters for the "ranks" list. */
static wn_err write_report(run *r, int k, const stats *rank_stats, wn_errbuf *err)
{
    stats *s = &r->stats[k];
    char dir[4400], path[4500];
    snprintf(dir, sizeof dir, "%s/stages/%02d-%s", r->dir, k, s->name);
    wn_err e = r->rank ? WN_OK : wn_mkdir_p(dir, err);
    if (e) return e;
    wn_buf out = {0};
    wn_jw w;
    wn_jw_init(&w, &out, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "stage"); wn_jw_str(&w, s->name);
    wn_jw_key(&w, "index"); wn_jw_i64(&w, k);
    stats_write(s, &w);
    wn_jw_key(&w, "throughput");
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "mb_per_s"); wn_jw_f64(&w, s->wall > 0 ? (double)s->bytes_in / 1e6 / s->wall : 0);
    wn_jw_key(&w, "docs_per_s"); wn_jw_f64(&w, s->wall > 0 ? (double)s->docs_in / s->wall : 0);
    wn_jw_obj_end(&w);
    wn_stage *st = k >= 1 && k <= r->n ? &r->st[k - 1] : NULL;
    wn_jw_key(&w, "peak_memory_bytes"); wn_jw_u64(&w, r->ranks > 1 ? s->mem_peak : st ? st->mem_peak : 0);
    wn_jw_key(&w, "device"); wn_jw_str(&w, st && st->device_used[0] ? st->device_used : "cpu");
    if (st && st->flops > 0) {
        wn_jw_key(&w, "flops"); wn_jw_f64(&w, st->flops);
    }
    /* per stage the CPU part is estimated (the RAPL counters are machine-wide,
     * and stages take turns within each batch); the GPU part of a stage on
     * the GPU is measured around its own calls */
    wn_energy_gpu_part gp = {s->wall, stage_gpu_joules(s)};
    wn_energy_write_parts(&w, -1, s->cpu, st && on_gpu(st) ? &gp : NULL);
    wn_jw_key(&w, "params");
    wn_jw_obj_begin(&w);
    if (st)
        for (int i = 0; i < st->def->n_params; i++) param_write(&w, &st->def->params[i], &st->params[i]);
    wn_jw_obj_end(&w);
    if (st && st->def->report) st->def->report(st, &w);
    if (rank_stats) { /* the ranks' own figures (the ones above are their sums; wall time the longest) */
        wn_jw_key(&w, "ranks");
        wn_jw_arr_begin(&w);
        for (int q = 0; q < r->ranks; q++) {
            const stats *x = &rank_stats[(size_t)q * (size_t)(r->n + 2) + (size_t)k];
            wn_jw_obj_begin(&w);
            wn_jw_key(&w, "rank"); wn_jw_i64(&w, q);
            wn_jw_key(&w, "docs_in"); wn_jw_u64(&w, x->docs_in);
            wn_jw_key(&w, "docs_out"); wn_jw_u64(&w, x->docs_out);
            wn_jw_key(&w, "bytes_in"); wn_jw_u64(&w, x->bytes_in);
            wn_jw_key(&w, "bytes_out"); wn_jw_u64(&w, x->bytes_out);
            wn_jw_key(&w, "wall_seconds"); wn_jw_f64(&w, x->wall);
            wn_jw_key(&w, "cpu_seconds"); wn_jw_f64(&w, x->cpu);
            wn_jw_key(&w, "mpi_bytes_sent"); wn_jw_u64(&w, x->mpi_bytes);
            wn_jw_obj_end(&w);
        }
        wn_jw_arr_end(&w);
    }
    wn_jw_obj_end(&w);
    wn_buf_putc(&out, '\n');
    snprintf(path, sizeof path, "%s/report.json", dir);
    e = !out.p ? WN_ERR_NOMEM : r->rank ? WN_OK : wn_write_atomic(path, out.p, out.len, err);
    wn_buf_free(&out);
    return e;
}

/* ---- progress ------------------------------------------------------------ */

static void progress(run *r, int final)
{
    if (!r->progress) return;
    double t = wn_now();
    if (!final && t - r->last_progress < 0.5) return;
    r->last_progress = t;
    double el = t - r->t0;
    uint64_t raw = r->raw_done + (r->rd ? wn_reader_raw_bytes(r->rd) : 0);
    if (r->progress_lines) fprintf(stderr, "\033[%dA", r->progress_lines);
    for (int k = 0; k < r->n + 2; k++) {
        stats *s = &r->stats[k];
        uint64_t dropped = 0;
        for (int i = 0; i < s->n_drops; i++) dropped += s->drops[i].count;
        fprintf(stderr, "\033[K  %-16s %12llu docs %10.1f MB %8.1f MB/s", s->name,
                (unsigned long long)s->docs_out, (double)s->bytes_out / 1e6,
                el > 0 ? (double)s->bytes_in / 1e6 / el : 0.0);
        if (dropped) fprintf(stderr, "  dropped %llu", (unsigned long long)dropped);
        if (s->modified) fprintf(stderr, "  modified %llu", (unsigned long long)s->modified);
        if (k == 0 && r->total_size) {
            double frac = (double)raw / (double)r->total_size;
            fprintf(stderr, "  %3.0f%%", 100 * frac);
            if (frac > 0.01 && !final) {
                int eta = (int)(el / frac - el);
                fprintf(stderr, "  ETA %d:%02d", eta / 60, eta % 60);
            }
        }
        fputc('\n', stderr);
    }
    r->progress_lines = r->n + 2;
}

/* ---- checkpoints --------------------------------------------------------- */

static void state_path(const run *r, char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s", r->state_base, what);
}

static wn_err checkpoint(run *r, wn_errbuf *err)
{
    char ck[4400], path[4600], name[64];
    int seq = r->ckpt_seq + 1;
    snprintf(name, sizeof name, "ckpt-%06d", seq);
    state_path(r, ck, sizeof ck, name);
    wn_err e = wn_mkdir_p(ck, err);
    for (int i = 0; !e && i < r->n; i++) {
        wn_stage *st = &r->st[i];
        if (!st->def->save) continue;
        snprintf(path, sizeof path, "%s/%02d-%s.state", ck, i + 1, st->def->name);
        FILE *f = fopen(path, "wb");
        if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        e = st->def->save(st, f);
        if (e) wn_fail(err, e, "stage %s: cannot save its state: %s", st->def->name, st->err.msg);
        if (fflush(f) || fsync(fileno(f))) e = wn_fail(err, WN_ERR_IO, "%s: write failed", path);
        fclose(f);
    }
    if (e) return e;
    if (r->outbox) { /* under MPI: the records so far are the outbox up to here */
        if (fflush(r->outbox) || fsync(fileno(r->outbox)))
            return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", r->outbox_path, strerror(errno));
    } else { /* the records of the open shard (a shard closed during the last batch) */
        const wn_buf *tail = wn_writer_tail(r->w);
        snprintf(path, sizeof path, "%s/writer-tail.jsonl", ck);
        if ((e = wn_write_atomic(path, tail->p ? tail->p : "", tail->len, err))) return e;
    }
    wn_buf out = {0};
    wn_jw w;
    wn_jw_init(&w, &out, 0);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "version"); wn_jw_i64(&w, 2);
    wn_jw_key(&w, "ranks"); wn_jw_i64(&w, r->ranks);
    wn_jw_key(&w, "outbox_bytes"); wn_jw_u64(&w, r->outbox_len);
    wn_jw_key(&w, "seq"); wn_jw_i64(&w, seq);
    wn_jw_key(&w, "file"); wn_jw_i64(&w, r->file);
    wn_jw_key(&w, "record"); wn_jw_u64(&w, r->rd ? wn_reader_records(r->rd) : 0);
    wn_jw_key(&w, "shards"); wn_jw_i64(&w, r->w ? wn_writer_shards(r->w) : 0);
    wn_jw_key(&w, "writer_bytes"); wn_jw_u64(&w, r->w ? wn_writer_bytes(r->w) : 0);
    wn_jw_key(&w, "raw_done"); wn_jw_u64(&w, r->raw_done);
    wn_jw_key(&w, "stats");
    wn_jw_arr_begin(&w);
    for (int k = 0; k < r->n + 2; k++) {
        wn_jw_obj_begin(&w);
        stats_write(&r->stats[k], &w);
        stats_write_gpu(&r->stats[k], &w);
        wn_jw_obj_end(&w);
    }
    wn_jw_arr_end(&w);
    wn_jw_obj_end(&w);
    state_path(r, path, sizeof path, "checkpoint.json");
    e = out.p ? wn_write_atomic(path, out.p, out.len, err) : WN_ERR_NOMEM;
    wn_buf_free(&out);
    if (e) return e;
    if (r->ckpt_seq) { /* the previous checkpoint is no longer needed */
        snprintf(name, sizeof name, "ckpt-%06d", r->ckpt_seq);
        state_path(r, ck, sizeof ck, name);
        wn_rm_tree(ck, NULL);
    }
    r->ckpt_seq = seq;
    if (getenv("WINNOW_TEST_KILL_AT_CHECKPOINT") && atoi(getenv("WINNOW_TEST_KILL_AT_CHECKPOINT")) == seq)
        raise(9); /* tests: die right after a checkpoint, as SIGKILL would */
    return WN_OK;
}

static wn_err restore(run *r, wn_errbuf *err)
{
    char path[4600], ck[4400], name[64];
    state_path(r, path, sizeof path, "checkpoint.json");
    if (!wn_exists(path)) return WN_OK; /* killed before the first checkpoint: start over */
    wn_buf j = {0};
    wn_err e = wn_read_file(path, &j, err);
    size_t off;
    const char *why;
    if (!e && wn_json_check_object(j.p, j.len, &off, &why))
        e = wn_fail(err, WN_ERR_STATE, "%s: unreadable checkpoint (%s at byte %zu); start over without --resume",
                    path, why, off);
    if (e) { wn_buf_free(&j); return e; }
    if (get_u64(j.p, j.len, "version") != 2) {
        wn_buf_free(&j);
        return wn_fail(err, WN_ERR_STATE, "%s: a checkpoint of an older winnow; start over without --resume", path);
    }
    if ((int)get_u64(j.p, j.len, "ranks") != r->ranks) {
        int was = (int)get_u64(j.p, j.len, "ranks");
        wn_buf_free(&j);
        return wn_fail(err, WN_ERR_STATE, "%s: this run was started with %d MPI rank%s; resume it with the same "
                       "number (now %d), or start over without --resume", r->dir, was, was == 1 ? "" : "s",
                       r->ranks);
    }
    r->outbox_len = get_u64(j.p, j.len, "outbox_bytes");
    r->ckpt_seq = (int)get_u64(j.p, j.len, "seq");
    r->resumed_from = r->ckpt_seq;
    r->file = (int)get_u64(j.p, j.len, "file");
    r->skip_to = get_u64(j.p, j.len, "record");
    r->raw_done = get_u64(j.p, j.len, "raw_done");
    int shards = (int)get_u64(j.p, j.len, "shards");
    wn_span arr;
    if (wn_json_get(j.p, j.len, "stats", &arr)) {
        wn_json_iter it;
        wn_span obj;
        wn_json_items_init(&it, arr.p, arr.n);
        for (int k = 0; k < r->n + 2 && !e && wn_json_items_next(&it, &obj); k++) e = stats_read(&r->stats[k], obj);
    }
    wn_buf_free(&j);
    if (e) return e;
    snprintf(name, sizeof name, "ckpt-%06d", r->ckpt_seq);
    state_path(r, ck, sizeof ck, name);
    for (int i = 0; i < r->n; i++) {
        wn_stage *st = &r->st[i];
        if (!st->def->load) continue;
        snprintf(path, sizeof path, "%s/%02d-%s.state", ck, i + 1, st->def->name);
        FILE *f = fopen(path, "rb");
        if (!f) return wn_fail(err, WN_ERR_STATE, "%s: missing stage state: %s", path, strerror(errno));
        e = st->def->load(st, f);
        fclose(f);
        if (e) return wn_fail(err, WN_ERR_STATE, "stage %s: cannot restore its state: %s", st->def->name,
                              st->err.msg);
    }
    if (r->outbox) return WN_OK; /* MPI: wn_run puts the outbox back to outbox_len */
    /* Shards after the checkpoint are redone; drop what a killed run left. */
    wn_writer_free(r->w);
    r->w = NULL;
    char docs[4400];
    snprintf(docs, sizeof docs, "%s/documents", r->dir);
    for (int s = shards;; s++) {
        snprintf(path, sizeof path, "%s/part-%05d.jsonl.zst", docs, s);
        char tmp[4700];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int had = wn_exists(path) | wn_exists(tmp);
        remove(path);
        remove(tmp);
        if (!had) break;
    }
    e = wn_writer_open(&r->w, docs, r->m->shard_bytes, r->m->zstd_level, omp_get_max_threads(), shards, err);
    /* the open shard's records written before the checkpoint go in again:
     * the compressed bytes come out the same */
    wn_buf tail = {0};
    snprintf(path, sizeof path, "%s/writer-tail.jsonl", ck);
    if (!e) e = wn_read_file(path, &tail, err);
    if (!e && tail.len) e = wn_writer_put_raw(r->w, tail.p, tail.len, err);
    wn_buf_free(&tail);
    return e;
}

/* ---- the loop ------------------------------------------------------------ */

/* What the process holds outside every stage's state (wn_run_info.reserve_bytes,
 * wn_stage_table_budget), on the high side of what was measured (BENCHMARKS.md,
 * "Memory budget"): 24 MiB for the binary and its libraries (16 MiB resident
 * at start), the reader (libarchive's blocks, the decompressor) and the
 * run's own tables; 6 batch sizes for the run's batch (up to BATCH_KEEP kept
 * between fills, and a fill's text and records on top: about 5 measured);
 * the writer's compressor, one zstd worker per thread. */
static uint64_t run_reserve(const wn_manifest *m, int threads)
{
    return (24ull << 20) + (BATCH_KEEP + 2) * (uint64_t)m->batch_bytes +
           wn_writer_mem_estimate(m->zstd_level, threads);
}

static wn_err open_next_reader(run *r, wn_errbuf *err)
{
    const wn_input_file *f = &r->m->files[r->file];
    wn_err e = wn_reader_open(&r->rd, f, &r->m->inputs[f->spec], (uint32_t)r->file, err);
    if (e) return e;
    while (wn_reader_records(r->rd) < r->skip_to) { /* resume: replay consumed records */
        int got;
        const char *reason;
        wn_errbuf ignored;
        e = wn_reader_next(r->rd, &r->scratch, &got, &reason, &ignored);
        if (e && e != WN_ERR_INPUT) return wn_fail(err, e, "%s", ignored.msg);
        if (!e && !got) break;
    }
    r->skip_to = 0;
    return WN_OK;
}

static wn_err fill_batch(run *r, wn_batch *b, int *eof, wn_errbuf *err)
{
    stats *s = &r->stats[0];
    uint64_t bytes = 0;
    wn_batch_reset(b);
    wn_batch_trim(b, BATCH_KEEP * (size_t)r->m->batch_bytes);
    *eof = 0;
    while (bytes < (uint64_t)r->m->batch_bytes) {
        if (!r->rd) {
            if (r->file >= r->file_end) { *eof = 1; break; }
            wn_err e = open_next_reader(r, err);
            if (e) return e;
        }
        wn_doc *d = wn_batch_push(b);
        if (!d) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
        int got;
        const char *reason = NULL;
        uint64_t before = wn_reader_records(r->rd);
        wn_err e = wn_reader_next(r->rd, d, &got, &reason, err);
        s->docs_in += wn_reader_records(r->rd) - before;
        if (e == WN_ERR_INPUT) {
            b->n--;
            const wn_input_spec *in = &r->m->inputs[r->m->files[r->file].spec];
            if (in->on_error == WN_ON_ERROR_FAIL) return e;
            if ((e = count_drop(s, reason, err->msg, strlen(err->msg), 1))) return e;
            continue;
        }
        if (e) return e;
        if (!got) {
            b->n--;
            r->raw_done += r->m->files[r->file].size;
            wn_reader_close(r->rd);
            r->rd = NULL;
            r->file++;
            continue;
        }
        bytes += d->text.len;
        s->docs_out++;
        s->bytes_out += d->text.len;
    }
    /* the readers' bytes in are input bytes as stored (compressed) */
    s->bytes_in = r->raw_done + (r->rd ? wn_reader_raw_bytes(r->rd) : 0);
    return WN_OK;
}

static void count_tokens(stats *s, const wn_batch *b, uint64_t *into)
{
    for (size_t k = 0; k < b->n; k++)
        if (b->docs[k].has_tokens && !b->docs[k].drop) {
            *into += b->docs[k].tokens.n;
            s->tokens_seen = 1;
        }
}

/* Counts a call of a stage on the GPU: wall seconds, and the GPU energy
 * since mark m (read outside the stage's wall time). */
static void gpu_account(run *r, stats *s, const wn_energy_gpu_mark *m, double wall)
{
    double j = wn_energy_gpu_since(m);
    if (j >= 0) {
        s->gpu_j += j;
        s->gpu_read++;
    } else {
        s->gpu_missed++;
    }
    r->gpu_wall += wall;
}

/* Passes batch b through stages first..n-1 (0-based), counting. */
static wn_err run_stages(run *r, wn_batch *b, int first, wn_errbuf *err)
{
    for (int i = first; i < r->n; i++) {
        wn_stage *st = &r->st[i];
        stats *s = &r->stats[i + 1];
        s->docs_in += b->n;
        s->bytes_in += wn_batch_text_bytes(b);
        count_tokens(s, b, &s->tokens_in);
        int gpu = on_gpu(st);
        wn_energy_gpu_mark gm = {0, 0};
        if (gpu) gm = wn_energy_gpu_start();
        double w0 = wn_now(), c0 = wn_cpu_now();
        uint64_t m0 = wn_mpi_bytes_sent();
        wn_err e = st->def->process(st, b);
        s->mpi_bytes += wn_mpi_bytes_sent() - m0;
        double dw = wn_now() - w0;
        s->wall += dw;
        s->cpu += wn_cpu_now() - c0;
        if (gpu) gpu_account(r, s, &gm, dw);
        if (e) return wn_fail(err, e, "stage %s: %s", st->def->name, st->err.msg);
        for (size_t k = 0; k < b->n; k++) {
            wn_doc *d = &b->docs[k];
            if (d->drop) {
                if ((e = count_drop(s, d->drop, d->id.p, d->id.len, 1))) return e;
            } else if (d->modified) {
                s->modified++;
                d->dirty = 1;
                d->modified = 0;
            }
        }
        wn_batch_compact(b);
        s->docs_out += b->n;
        count_tokens(s, b, &s->tokens_out);
        for (size_t k = 0; k < b->n; k++) {
            s->bytes_out += b->docs[k].text.len;
            s->hist[hist_bucket(b->docs[k].text.len)]++;
        }
    }
    return WN_OK;
}

static wn_err write_batch(run *r, wn_batch *b, wn_errbuf *err)
{
    stats *s = &r->stats[r->n + 1];
    double w0 = wn_now(), c0 = wn_cpu_now();
    uint64_t before = r->outbox ? r->outbox_len : wn_writer_bytes(r->w);
    for (size_t k = 0; k < b->n; k++) {
        const wn_doc *d = &b->docs[k];
        const wn_input_spec *in = &r->m->inputs[r->m->files[d->file].spec];
        const char *key = d->raw_text ? in->text_key : "text";
        wn_err e;
        if (r->outbox) { /* under MPI: rendered now, cut into shards at the end */
            wn_buf_clear(&r->line);
            if ((e = wn_record_render(d, key, &r->line)) || (e = wn_buf_putc(&r->line, '\n')))
                return wn_fail(err, e, "out of memory rendering a record");
            if (fwrite(r->line.p, 1, r->line.len, r->outbox) != r->line.len)
                return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", r->outbox_path, strerror(errno));
            r->outbox_len += r->line.len;
        } else if ((e = wn_writer_put(r->w, d, key, err))) {
            return e;
        }
        s->docs_in++;
        s->docs_out++;
        s->bytes_in += d->text.len;
        s->hist[hist_bucket(d->text.len)]++;
    }
    count_tokens(s, b, &s->tokens_in);
    count_tokens(s, b, &s->tokens_out);
    s->bytes_out += (r->outbox ? r->outbox_len : wn_writer_bytes(r->w)) - before;
    s->wall += wn_now() - w0;
    s->cpu += wn_cpu_now() - c0;
    return WN_OK;
}

/* ---- MPI: the ranks' outboxes cut into the single process's shards -------
 *
 * Rank r's records come after rank r-1's in the single process's output
 * order, and a shard closes right after the record that fills it (writer.h),
 * so where each shard starts and ends is a scan over the records' sizes in
 * rank order: the state {shard number, bytes in the open shard, the rank
 * where it opened} travels from rank 0 to the last (only sizes are read).
 * A shard is written by the rank where it opens; the ranks it runs into send
 * it their leading records (at most one shard's worth per rank boundary),
 * flagged with whether they close it. Every rank then compresses its own
 * shards, so the bytes are the single writer's. */

typedef struct {
    uint64_t shard, bytes;
    int64_t owner;
} cut_state;

/* Writes the records of buf[0..n) one by one (the writer closes a full
 * shard after a record, as it would have in one process). */
static wn_err put_records(wn_writer *w, const char *p, size_t n, wn_errbuf *err)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) + 1 : n;
        wn_err e = wn_writer_put_raw(w, p, k, err);
        if (e) return e;
        p += k;
        n -= k;
    }
    return WN_OK;
}

static wn_err commit_outboxes(run *r, wn_errbuf *err)
{
    const uint64_t limit = (uint64_t)r->m->shard_bytes;
    char docs[4400];
    snprintf(docs, sizeof docs, "%s/documents", r->dir);
    if (fflush(r->outbox))
        return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", r->outbox_path, strerror(errno));
    FILE *f = fopen(r->outbox_path, "rb");
    if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot open: %s", r->outbox_path, strerror(errno));
    char *rec = NULL;
    size_t cap = 0;
    ssize_t n;
    wn_buf msg = {0};
    wn_err e = WN_OK;
    /* pass 1: the scan */
    cut_state in = {0, 0, -1}, st;
    if (r->rank > 0) {
        if ((e = wn_mpi_recv(r->rank - 1, &msg))) goto done;
        memcpy(&in, msg.p, sizeof in);
    }
    st = in;
    while ((n = getline(&rec, &cap, f)) > 0) {
        if (!st.bytes) st.owner = r->rank;
        st.bytes += (uint64_t)n;
        if (st.bytes >= limit) { st.shard++; st.bytes = 0; }
    }
    if (r->rank < r->ranks - 1) wn_mpi_send(r->rank + 1, &st, sizeof st);
    uint64_t total = st.shard + (st.bytes ? 1 : 0);
    /* pass 2: the head of a shard opened by an earlier rank goes there */
    rewind(f);
    int mine = 1; /* records are left for shards of this rank's own */
    if (in.bytes) {
        uint64_t bytes = in.bytes;
        int closes = 0;
        wn_buf_clear(&msg);
        wn_buf_putc(&msg, 0);
        while (!closes && (n = getline(&rec, &cap, f)) > 0) {
            if (wn_buf_append(&msg, rec, (size_t)n)) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); goto done; }
            bytes += (uint64_t)n;
            closes = bytes >= limit;
        }
        msg.p[0] = (char)closes;
        wn_mpi_send((int)in.owner, msg.p, msg.len);
        mine = closes;
    }
    if (mine) {
        int first = (int)(in.bytes ? in.shard + 1 : in.shard);
        if ((e = wn_writer_open(&r->w, docs, r->m->shard_bytes, r->m->zstd_level, omp_get_max_threads(), first,
                                err)))
            goto done;
        while (!e && (n = getline(&rec, &cap, f)) > 0) e = wn_writer_put_raw(r->w, rec, (size_t)n, err);
        /* the shard this rank opened last runs on into the next ranks: their
         * heads, in rank order, until one closes it */
        for (int k = r->rank + 1; !e && wn_writer_pending(r->w) && k < r->ranks; k++) {
            if ((e = wn_mpi_recv(k, &msg))) break;
            int closes = msg.len && msg.p[0];
            e = put_records(r->w, msg.p + 1, msg.len ? msg.len - 1 : 0, err);
            if (closes) break;
        }
        if (!e) e = wn_writer_close_shard(r->w, err);
    }
    if (!e && ferror(f)) e = wn_fail(err, WN_ERR_IO, "%s: read failed: %s", r->outbox_path, strerror(errno));
    wn_mpi_allreduce_max_u64(&total, 1);
    r->shards_total = (int)total;
done:
    free(rec);
    fclose(f);
    wn_buf_free(&msg);
    return e;
}

static wn_err pipeline(run *r, wn_errbuf *err)
{
    wn_batch b = {0};
    wn_err e = WN_OK;
    int eof = 0;
    while (!eof) {
        double w0 = wn_now(), c0 = wn_cpu_now();
        uint64_t read_before = r->stats[0].bytes_out;
        int shards_before = r->w ? wn_writer_shards(r->w) : 0;
        if (r->w) wn_writer_tail_begin(r->w);
        e = fill_batch(r, &b, &eof, err);
        r->stats[0].wall += wn_now() - w0;
        r->stats[0].cpu += wn_cpu_now() - c0;
        if (e) goto cleanup;
        if ((e = run_stages(r, &b, 0, err)) || (e = write_batch(r, &b, err))) goto cleanup;
        r->read_since_ckpt += r->stats[0].bytes_out - read_before;
        if (!eof && r->w && wn_writer_shards(r->w) != shards_before) {
            /* a shard closed during the batch: checkpoint (with the records
             * of the batch already in the next shard) */
            if ((e = checkpoint(r, err))) goto cleanup;
            r->read_since_ckpt = 0;
        } else if (!eof && (!r->w || !wn_writer_pending(r->w)) &&
                   r->read_since_ckpt >= (uint64_t)r->m->shard_bytes) {
            /* nothing written for a shard's worth of input: a stage holds the
             * documents back (select, dedup), or the records go to the
             * outbox (MPI); checkpoint anyway, so a resume does not start
             * from the beginning */
            if ((e = checkpoint(r, err))) goto cleanup;
            r->read_since_ckpt = 0;
        }
        progress(r, 0);
    }
    /* End of stream: stages that held documents back emit them now, and
     * what they emit flows through the stages after them. No checkpoints
     * from here on (a resume redoes the end of stream from the last one),
     * so the writer keeps no records for one. */
    if (r->w) wn_writer_tail_end(r->w);
    for (int i = 0; i < r->n; i++) {
        wn_stage *st = &r->st[i];
        if (!st->def->finish) continue;
        stats *s = &r->stats[i + 1];
        for (;;) { /* a batch at a time, until the stage appends nothing */
            wn_batch_reset(&b);
            wn_batch_trim(&b, BATCH_KEEP * (size_t)r->m->batch_bytes);
            int gpu = on_gpu(st);
            wn_energy_gpu_mark gm = {0, 0};
            if (gpu) gm = wn_energy_gpu_start();
            double w0 = wn_now(), c0 = wn_cpu_now();
            uint64_t m0 = wn_mpi_bytes_sent();
            e = st->def->finish(st, &b);
            s->mpi_bytes += wn_mpi_bytes_sent() - m0;
            double dw = wn_now() - w0;
            s->wall += dw;
            s->cpu += wn_cpu_now() - c0;
            if (gpu) gpu_account(r, s, &gm, dw);
            if (e) {
                e = wn_fail(err, e, "stage %s: %s", st->def->name, st->err.msg);
                goto cleanup;
            }
            if (!b.n) break;
            /* documents it held back and now rejects count as its drops */
            for (size_t k = 0; k < b.n; k++) {
                wn_doc *d = &b.docs[k];
                if (d->drop && (e = count_drop(s, d->drop, d->id.p, d->id.len, 1))) goto cleanup;
                if (!d->drop && d->modified) {
                    s->modified++;
                    d->dirty = 1;
                    d->modified = 0;
                }
            }
            wn_batch_compact(&b);
            s->docs_out += b.n;
            count_tokens(s, &b, &s->tokens_out);
            for (size_t k = 0; k < b.n; k++) {
                s->bytes_out += b.docs[k].text.len;
                s->hist[hist_bucket(b.docs[k].text.len)]++;
            }
            /* (no checkpoints from here on: a resume redoes the end of
             * stream from the last one) */
            if ((e = run_stages(r, &b, i + 1, err)) || (e = write_batch(r, &b, err))) goto cleanup;
        }
    }
    if (r->outbox) {
        stats *s = &r->stats[r->n + 1];
        double w0 = wn_now(), c0 = wn_cpu_now();
        uint64_t m0 = wn_mpi_bytes_sent();
        e = commit_outboxes(r, err);
        s->mpi_bytes += wn_mpi_bytes_sent() - m0;
        s->wall += wn_now() - w0;
        s->cpu += wn_cpu_now() - c0;
    } else {
        e = wn_writer_close_shard(r->w, err);
        r->shards_total = wn_writer_shards(r->w);
    }
    progress(r, 1);
cleanup:
    wn_batch_free(&b);
    return e;
}

/* ---- MPI: one report from all ranks ---------------------------------------- */

/* Adds rank b's counters to a (ranks in order: the drop samples stay the
 * first ones of the whole stream). Wall time is the longest rank's. */
static wn_err stats_add(stats *a, const stats *b)
{
    a->docs_in += b->docs_in;
    a->docs_out += b->docs_out;
    a->bytes_in += b->bytes_in;
    a->bytes_out += b->bytes_out;
    a->modified += b->modified;
    a->tokens_in += b->tokens_in;
    a->tokens_out += b->tokens_out;
    a->tokens_seen |= b->tokens_seen;
    a->wall = a->wall > b->wall ? a->wall : b->wall;
    a->cpu += b->cpu;
    a->gpu_j += b->gpu_j;
    a->gpu_read += b->gpu_read;
    a->gpu_missed += b->gpu_missed;
    a->mpi_bytes += b->mpi_bytes;
    for (int k = 0; k < HIST_BUCKETS; k++) a->hist[k] += b->hist[k];
    for (int i = 0; i < b->n_drops; i++) {
        const drop_stat *x = &b->drops[i];
        drop_stat *d = drop_slot(a, x->reason);
        if (!d) return WN_ERR_NOMEM;
        d->count += x->count;
        for (int k = 0; k < x->n_samples && d->n_samples < DROP_SAMPLES; k++)
            if (!(d->samples[d->n_samples++] = wn_strdup(x->samples[k]))) return WN_ERR_NOMEM;
    }
    return WN_OK;
}

/* Every rank sends its counters; rank 0 replaces its own with the sums and
 * keeps each rank's in *rank_stats (ranks x (n + 2)) for the reports. */
static wn_err merge_ranks(run *r, stats **rank_stats, wn_errbuf *err)
{
    const int K = r->n + 2;
    uint64_t *peaks = wn_calloc((size_t)K, sizeof *peaks), *counts = wn_calloc((size_t)r->ranks, sizeof *counts);
    wn_buf out = {0}, all = {0};
    wn_err e = WN_OK;
    if (!peaks || !counts) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); goto done; }
    for (int k = 1; k <= r->n; k++) peaks[k] = r->st[k - 1].mem_peak;
    wn_mpi_allreduce_max_u64(peaks, (size_t)K);
    for (int k = 0; k < K; k++) r->stats[k].mem_peak = peaks[k];
    wn_jw w;
    wn_jw_init(&w, &out, 0);
    wn_jw_arr_begin(&w);
    for (int k = 0; k < K; k++) {
        wn_jw_obj_begin(&w);
        stats_write(&r->stats[k], &w);
        stats_write_gpu(&r->stats[k], &w);
        wn_jw_obj_end(&w);
    }
    wn_jw_arr_end(&w);
    if (!out.p || wn_mpi_allgatherv(out.p, out.len, &all, counts)) {
        e = wn_fail(err, WN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (r->rank) goto done;
    stats *rs = *rank_stats = wn_calloc((size_t)r->ranks * (size_t)K, sizeof *rs);
    if (!rs) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); goto done; }
    uint64_t off = 0;
    for (int q = 0; q < r->ranks && !e; q++) {
        wn_json_iter it;
        wn_span obj;
        wn_json_items_init(&it, all.p + off, (size_t)counts[q]);
        for (int k = 0; k < K && !e && wn_json_items_next(&it, &obj); k++) e = stats_read(&rs[(size_t)q * K + k], obj);
        off += counts[q];
    }
    for (int k = 0; k < K && !e; k++) {
        stats m = {0};
        memcpy(m.name, r->stats[k].name, sizeof m.name);
        m.mem_peak = peaks[k];
        for (int q = 0; q < r->ranks && !e; q++) e = stats_add(&m, &rs[(size_t)q * K + k]);
        stats_free(&r->stats[k]);
        r->stats[k] = m;
    }
    if (e) e = wn_fail(err, e, "merging the ranks' reports: out of memory");
done:
    wn_free(peaks);
    wn_free(counts);
    wn_buf_free(&out);
    wn_buf_free(&all);
    return e;
}

static wn_err write_summary(run *r, double wall, wn_errbuf *err)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    wn_buf out = {0};
    wn_jw w;
    wn_jw_init(&w, &out, 1);
    wn_jw_obj_begin(&w);
    wn_jw_key(&w, "status"); wn_jw_str(&w, "complete");
    wn_jw_key(&w, "winnow_version"); wn_jw_str(&w, WN_VERSION);
    wn_jw_key(&w, "manifest"); wn_jw_str(&w, r->m->file);
    wn_jw_key(&w, "threads"); wn_jw_i64(&w, omp_get_max_threads());
    wn_jw_key(&w, "mpi_ranks"); wn_jw_i64(&w, r->ranks);
    wn_jw_key(&w, "resumed_from_checkpoint"); wn_jw_i64(&w, r->resumed_from);
    wn_jw_key(&w, "wall_seconds_last_session"); wn_jw_f64(&w, wall);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6, flops = 0;
    for (int i = 0; i < r->n; i++) flops += r->st[i].flops;
    uint64_t rss = (uint64_t)ru.ru_maxrss * 1024;
    /* across ranks: CPU seconds and FLOPs add up, memory is the largest rank's */
    double sums[2] = {cpu, flops};
    wn_mpi_allreduce_sum_f64(sums, 2);
    wn_mpi_allreduce_max_u64(&rss, 1);
    cpu = sums[0];
    flops = sums[1];
    wn_jw_key(&w, "peak_rss_bytes"); wn_jw_u64(&w, rss);
    uint64_t input_bytes = 0;
    for (int i = 0; i < r->m->n_files; i++) input_bytes += r->m->files[i].size;
    wn_jw_key(&w, "cpu_seconds_last_session"); wn_jw_f64(&w, cpu);
    wn_jw_key(&w, "flops"); wn_jw_f64(&w, flops);
    wn_jw_key(&w, "flops_note"); wn_jw_str(&w, "model work counted analytically by the stages that do it");
    uint64_t uj;
    int gpu = 0;
    for (int i = 0; i < r->n; i++) gpu |= on_gpu(&r->st[i]);
    /* the session's GPU energy, stages' setup and idle gaps included */
    wn_energy_gpu_part gp = {r->gpu_wall, gpu ? wn_energy_gpu_since(&r->gpu0) : -1};
    wn_energy_write_parts(&w, r->have_rapl && wn_energy_rapl(&uj) ? wn_energy_rapl_joules(r->rapl0, uj) : -1, cpu,
                          gpu ? &gp : NULL);
    wn_jw_key(&w, "input_files"); wn_jw_i64(&w, r->m->n_files);
    wn_jw_key(&w, "input_bytes"); wn_jw_u64(&w, input_bytes);
    wn_jw_key(&w, "documents_out"); wn_jw_u64(&w, r->stats[r->n + 1].docs_out);
    wn_jw_key(&w, "document_shards"); wn_jw_i64(&w, r->shards_total);
    wn_jw_obj_end(&w);
    wn_buf_putc(&out, '\n');
    char path[4200];
    snprintf(path, sizeof path, "%s/run.json", r->dir);
    wn_err e = !out.p ? WN_ERR_NOMEM : r->rank ? WN_OK : wn_write_atomic(path, out.p, out.len, err);
    wn_buf_free(&out);
    return e;
}

/* The resolved manifest without the threads line: what must match on resume. */
static wn_err fingerprint(const char *resolved, wn_buf *out)
{
    for (const char *p = resolved; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (strncmp(p, "threads:", 8) && p[0] != '#') wn_buf_append(out, p, len);
        p += len;
    }
    return out->p ? WN_OK : WN_ERR_NOMEM;
}

static wn_err prepare_dir(run *r, const char *resolved, wn_errbuf *err)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/manifest.resolved.yaml", r->dir);
    if (r->o->resume) {
        wn_buf old = {0}, a = {0}, b = {0};
        if (!wn_exists(path)) {
            return wn_fail(err, WN_ERR_STATE, "%s: no run to resume here (no manifest.resolved.yaml); "
                           "run without --resume", r->dir);
        }
        wn_err e = wn_read_file(path, &old, err);
        if (!e && !(e = fingerprint(old.p, &a)) && !(e = fingerprint(resolved, &b)) &&
            (a.len != b.len || memcmp(a.p, b.p, a.len)))
            e = wn_fail(err, WN_ERR_STATE, "%s: the manifest or its input files changed since this run "
                        "started; resume needs the same ones (or run without --resume)", r->dir);
        wn_buf_free(&old);
        wn_buf_free(&a);
        wn_buf_free(&b);
        return e;
    }
    /* A fresh run replaces what an earlier run of the same manifest left. */
    static const char *const owned[] = {"documents", "stages", "state",     "shards",
                                        "models",    "experiment", "experiment.json", "report.html", "run.json",
                                        "manifest.resolved.yaml"};
    for (size_t i = 0; i < WN_ARRAY_LEN(owned); i++) {
        snprintf(path, sizeof path, "%s/%s", r->dir, owned[i]);
        wn_err e = wn_rm_tree(path, err);
        if (e) return e;
    }
    wn_err e = wn_mkdir_p(r->dir, err);
    if (e) return e;
    snprintf(path, sizeof path, "%s/manifest.resolved.yaml", r->dir);
    return wn_write_atomic(path, resolved, strlen(resolved), err);
}

/* The input files of this rank: a contiguous range, so that every record of
 * rank q comes before every record of rank q+1 in the single process's
 * order. File i goes to the rank whose share of the total bytes holds the
 * middle of the file (by count when every file is empty). */
static void file_range(run *r)
{
    const wn_manifest *m = r->m;
    uint64_t total = 0, before = 0;
    for (int i = 0; i < m->n_files; i++) total += m->files[i].size;
    r->file_begin = r->file_end = -1;
    for (int i = 0; i < m->n_files; i++) {
        uint64_t mid2 = 2 * before + m->files[i].size; /* twice the middle */
        int q = total ? (int)((double)mid2 / (2.0 * (double)total) * r->ranks)
                      : (int)((int64_t)i * r->ranks / m->n_files);
        if (q >= r->ranks) q = r->ranks - 1;
        if (q == r->rank) {
            if (r->file_begin < 0) r->file_begin = i;
            r->file_end = i + 1;
        }
        before += m->files[i].size;
    }
    if (r->file_begin < 0) r->file_begin = r->file_end = m->n_files; /* nothing for this rank */
}

wn_err wn_run(wn_manifest *m, const wn_run_opts *o, wn_errbuf *err)
{
    run r = {0};
    wn_buf resolved = {0};
    char path[4400];
    stats *rank_stats = NULL;
    wn_err e;
    r.m = m;
    r.o = o;
    r.n = m->n_stages;
    r.rank = wn_mpi_rank();
    r.ranks = wn_mpi_size();
    r.t0 = wn_now();
    r.have_rapl = wn_energy_rapl(&r.rapl0);
    /* GPU counters only where a stage may use a GPU (NVML's start-up is not
     * free, and a CPU-only build never loads it) */
    if (strcmp(m->device ? m->device : "auto", "cpu") && wn_cuda_device_count() > 0) r.gpu0 = wn_energy_gpu_start();
    r.progress = o->progress < 0 ? isatty(2) : o->progress;
    snprintf(r.dir, sizeof r.dir, "%s", m->workdir);
    int threads = o->threads ? o->threads : m->threads;
    if (threads) omp_set_num_threads(threads);

    if ((e = wn_manifest_expand_inputs(m, err))) return e;
    file_range(&r);
    r.file = r.file_begin;
    for (int i = r.file_begin; i < r.file_end; i++) r.total_size += m->files[i].size;
    if (r.ranks > 1) snprintf(r.state_base, sizeof r.state_base, "%s/state/rank-%04d", r.dir, r.rank);
    else snprintf(r.state_base, sizeof r.state_base, "%s/state", r.dir);
    if ((e = wn_manifest_resolved(m, &resolved))) return wn_fail(err, e, "out of memory");
    if (o->resume) {
        snprintf(path, sizeof path, "%s/run.json", r.dir);
        if (wn_exists(path)) {
            wn_buf_free(&resolved);
            fprintf(stderr, "winnow: %s: the run is already complete; nothing to resume\n", r.dir);
            return WN_OK;
        }
    }
    /* rank 0 prepares the run directory (a fresh run empties it) */
    snprintf(path, sizeof path, "%s/documents", r.dir);
    if ((o->resume || r.rank == 0) && (e = prepare_dir(&r, resolved.p, err))) goto cleanup;
    if (r.rank == 0 && (e = wn_mkdir_p(path, err))) goto cleanup;
    wn_mpi_barrier();
    if (r.ranks == 1) {
        if ((e = wn_writer_open(&r.w, path, m->shard_bytes, m->zstd_level, omp_get_max_threads(), 0, err)))
            goto cleanup;
    } else {
        if ((e = wn_mkdir_p(r.state_base, err))) goto cleanup;
        snprintf(r.outbox_path, sizeof r.outbox_path, "%s/outbox.jsonl", r.state_base);
        r.outbox = fopen(r.outbox_path, o->resume && wn_exists(r.outbox_path) ? "r+b" : "wb");
        if (!r.outbox) {
            e = wn_fail(err, WN_ERR_IO, "%s: cannot open: %s", r.outbox_path, strerror(errno));
            goto cleanup;
        }
    }

    r.st = wn_calloc((size_t)(r.n ? r.n : 1), sizeof *r.st);
    r.stats = wn_calloc((size_t)r.n + 2, sizeof *r.stats);
    if (!r.st || !r.stats) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); goto cleanup; }
    snprintf(r.stats[0].name, sizeof r.stats[0].name, "read");
    snprintf(r.stats[r.n + 1].name, sizeof r.stats[0].name, "write");
    { /* the manifest's identity: what shapes the outputs, not where they go */
        wn_buf fp = {0}, h = {0};
        fingerprint(resolved.p, &fp);
        for (const char *p = fp.p ? fp.p : ""; *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
            if (strncmp(p, "name:", 5) && strncmp(p, "workdir:", 8)) wn_buf_append(&h, p, len);
            p += len;
        }
        r.info.run_dir = r.dir;
        r.info.manifest_hash = XXH3_64bits(h.p ? h.p : "", h.len);
        wn_buf_free(&h);
        r.info.eot_id = -1;
        r.info.device = m->device;
        r.info.batch_bytes = m->batch_bytes;
        r.info.reserve_bytes = run_reserve(m, omp_get_max_threads());
        r.info.cache_dir = o->cache_dir;
        r.info.n_datasets = m->n_datasets;
        r.ds_names = wn_calloc((size_t)m->n_datasets + 1, sizeof *r.ds_names);
        r.ds_paths = wn_calloc((size_t)m->n_datasets + 1, sizeof *r.ds_paths);
        if (!r.ds_names || !r.ds_paths) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); goto cleanup; }
        for (int i = 0; i < m->n_datasets; i++) {
            r.ds_names[i] = m->datasets[i].name;
            r.ds_paths[i] = m->datasets[i].path;
        }
        r.info.dataset_names = r.ds_names;
        r.info.dataset_paths = r.ds_paths;
        wn_buf_free(&fp);
    }
    r.file_inputs = wn_calloc((size_t)m->n_files + 1, sizeof *r.file_inputs);
    if (!r.file_inputs) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); goto cleanup; }
    for (int i = 0; i < m->n_files; i++) r.file_inputs[i] = m->inputs[m->files[i].spec].path;
    r.info.file_inputs = r.file_inputs;
    r.info.n_files = m->n_files;
    for (int i = 0; i < r.n; i++) {
        wn_stage *st = &r.st[i];
        st->run = &r.info;
        st->def = m->stages[i].def;
        st->params = m->stages[i].values;
        st->index = i + 1;
        st->threads = omp_get_max_threads();
        st->memory_budget = m->memory;
        snprintf(r.stats[i + 1].name, sizeof r.stats[0].name, "%s", st->def->name);
        char sd[4400];
        snprintf(sd, sizeof sd, "%s/%02d-%s", r.state_base, i + 1, st->def->name);
        st->state_dir = wn_strdup(sd);
        st->state = wn_calloc(1, st->def->state_size ? st->def->state_size : 1);
        if (!st->state || !st->state_dir) { e = wn_fail(err, WN_ERR_NOMEM, "out of memory"); goto cleanup; }
        if ((e = wn_mkdir_p(sd, err))) goto cleanup;
        uint64_t m0 = wn_mpi_bytes_sent();
        if (st->def->open && (e = st->def->open(st))) {
            e = wn_fail(err, e, "stage %s: %s", st->def->name, st->err.msg);
            goto cleanup;
        }
        r.stats[i + 1].mpi_bytes += wn_mpi_bytes_sent() - m0;
    }
    if (o->resume && (e = restore(&r, err))) goto cleanup;
    if (r.outbox && (fflush(r.outbox) || ftruncate(fileno(r.outbox), (off_t)r.outbox_len) ||
                     fseeko(r.outbox, (off_t)r.outbox_len, SEEK_SET))) {
        /* a resumed rank's outbox goes back to its length at the checkpoint */
        e = wn_fail(err, WN_ERR_STATE, "%s: cannot truncate to the checkpoint: %s", r.outbox_path, strerror(errno));
        goto cleanup;
    }
    if ((e = pipeline(&r, err))) goto cleanup;
    if (r.ranks > 1 && (e = merge_ranks(&r, &rank_stats, err))) goto cleanup;
    for (int k = 0; k < r.n + 2; k++)
        if ((e = write_report(&r, k, rank_stats, err))) goto cleanup;
    if ((e = write_summary(&r, wn_now() - r.t0, err))) goto cleanup;
    wn_mpi_barrier(); /* every rank is done with its state */
    if (!o->keep_state && r.rank == 0) {
        snprintf(path, sizeof path, "%s/state", r.dir);
        wn_rm_tree(path, NULL);
    }
cleanup:
    if (r.st)
        for (int i = 0; i < r.n; i++) {
            if (r.st[i].state && r.st[i].def->close) r.st[i].def->close(&r.st[i]);
            wn_free(r.st[i].state);
            wn_free((char *)r.st[i].state_dir);
        }
    if (r.stats)
        for (int k = 0; k < r.n + 2; k++) stats_free(&r.stats[k]);
    if (rank_stats)
        for (size_t k = 0; k < (size_t)r.ranks * (size_t)(r.n + 2); k++) stats_free(&rank_stats[k]);
    wn_free(rank_stats);
    if (r.outbox) fclose(r.outbox);
    wn_buf_free(&r.line);
    wn_free(r.st);
    wn_free(r.stats);
    wn_free(r.ds_names);
    wn_free(r.ds_paths);
    wn_free(r.file_inputs);
    wn_reader_close(r.rd);
    wn_writer_free(r.w);
    wn_buf_free(&r.scratch.id);
    wn_buf_free(&r.scratch.text);
    wn_buf_free(&r.scratch.raw);
    wn_buf_free(&r.scratch.attrs);
    wn_buf_free(&resolved);
    return e;
}
