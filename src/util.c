/*
 * util.c - error values, the allocation wrapper and wn_buf (see wn.h).
 */
#include "wn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const err_names[WN_ERR__COUNT] = {
    [WN_OK] = "ok",
    [WN_ERR_NOMEM] = "out of memory",
    [WN_ERR_IO] = "i/o error",
    [WN_ERR_USAGE] = "usage error",
    [WN_ERR_MANIFEST] = "manifest error",
    [WN_ERR_INPUT] = "input error",
    [WN_ERR_STATE] = "run state error",
    [WN_ERR_INTERNAL] = "internal error",
};

const char *wn_err_name(wn_err e)
{
    return (unsigned)e < WN_ERR__COUNT ? err_names[e] : "unknown error";
}

wn_err wn_fail(wn_errbuf *e, wn_err code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void wn_check_failed(const char *cond, const char *file, int line)
{
    fprintf(stderr, "winnow: internal check failed: %s (%s:%d)\n", cond, file, line);
    abort();
}

/* Fault injection: when > 0, counts down; the allocation that brings it to
 * zero fails. Not thread-safe by design: tests use it single-threaded. */
static long alloc_countdown = -1;

void wn_alloc_fail_after(long n) { alloc_countdown = n; }

static int alloc_should_fail(void)
{
    if (alloc_countdown < 0) return 0;
    if (alloc_countdown == 0) return 1;
    return --alloc_countdown == 0;
}

void *wn_malloc(size_t n) { return alloc_should_fail() ? NULL : malloc(n ? n : 1); }
void *wn_calloc(size_t c, size_t s) { return alloc_should_fail() ? NULL : calloc(c ? c : 1, s ? s : 1); }
void *wn_realloc(void *p, size_t n) { return alloc_should_fail() ? NULL : realloc(p, n ? n : 1); }
void wn_free(void *p) { free(p); }

char *wn_strndup(const char *s, size_t n)
{
    char *d = wn_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *wn_strdup(const char *s) { return s ? wn_strndup(s, strlen(s)) : NULL; }

wn_err wn_buf_reserve(wn_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return WN_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap += cap / 2 + 64;
    char *p = wn_realloc(b->p, cap);
    if (!p) return WN_ERR_NOMEM;
    b->p = p;
    b->cap = cap;
    return WN_OK;
}

wn_err wn_buf_append(wn_buf *b, const void *p, size_t n)
{
    if (wn_buf_reserve(b, n)) return WN_ERR_NOMEM;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return WN_OK;
}

wn_err wn_buf_puts(wn_buf *b, const char *s) { return wn_buf_append(b, s, strlen(s)); }

wn_err wn_buf_putc(wn_buf *b, char c) { return wn_buf_append(b, &c, 1); }

wn_err wn_buf_printf(wn_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return WN_ERR_INTERNAL;
    if (wn_buf_reserve(b, (size_t)n)) return WN_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return WN_OK;
}

void wn_buf_free(wn_buf *b)
{
    wn_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

wn_err wn_ids_push(wn_ids *v, uint32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        uint32_t *p = wn_realloc(v->p, cap * sizeof *p);
        if (!p) return WN_ERR_NOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return WN_OK;
}

void wn_ids_free(wn_ids *v)
{
    wn_free(v->p);
    memset(v, 0, sizeof *v);
}

wn_err wn_floats_resize(wn_floats *v, size_t n)
{
    if (n > v->cap) {
        size_t cap = n < 64 ? 64 : n + n / 2;
        float *p = wn_realloc(v->p, cap * sizeof *p);
        if (!p) return WN_ERR_NOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->n = n;
    return WN_OK;
}

void wn_floats_free(wn_floats *v)
{
    wn_free(v->p);
    memset(v, 0, sizeof *v);
}

double wn_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double wn_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
