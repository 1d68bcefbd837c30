/*
 * wn.h - the few things every winnow file needs: error values, the allocation
 * wrapper, a growable byte buffer and always-on checks.
 *
 * Ownership: a wn_buf owns its bytes; wn_buf_free accepts a zeroed buffer.
 * Errors are values: functions return wn_err and write a one-line message with
 * context (file, line, offset, key) into a caller-supplied wn_errbuf. Nothing
 * below prints or exits except WN_CHECK, which guards memory and output.
 */
#ifndef WN_H
#define WN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define WN_VERSION "0.1.0"

typedef enum {
    WN_OK = 0,
    WN_ERR_NOMEM,    /* allocation failed */
    WN_ERR_IO,       /* a file could not be opened, read, written or renamed */
    WN_ERR_USAGE,    /* bad command line */
    WN_ERR_MANIFEST, /* manifest invalid: unknown key, bad type, out of range */
    WN_ERR_INPUT,    /* bad input record/stream (malformed, truncated, corrupt) */
    WN_ERR_STATE,    /* run directory / resume state unusable */
    WN_ERR_INTERNAL, /* a bug: an invariant did not hold */
    WN_ERR__COUNT
} wn_err;

const char *wn_err_name(wn_err e);

typedef struct {
    char msg[2048];
} wn_errbuf;

/* Writes the formatted message into e (if non-NULL) and returns code. */
wn_err wn_fail(wn_errbuf *e, wn_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* All allocation goes through these so tests can inject out-of-memory
 * (wn_alloc_fail_after(n): the n-th following allocation fails; -1 = never). */
void *wn_malloc(size_t n);
void *wn_calloc(size_t count, size_t size);
void *wn_realloc(void *p, size_t n);
char *wn_strdup(const char *s);
char *wn_strndup(const char *s, size_t n);
void wn_free(void *p);
void wn_alloc_fail_after(long n);

/* Always-on guard for cheap checks that protect memory or output. */
#define WN_CHECK(cond)                                                         \
    do {                                                                       \
        if (!(cond)) wn_check_failed(#cond, __FILE__, __LINE__);               \
    } while (0)
void wn_check_failed(const char *cond, const char *file, int line)
    __attribute__((noreturn));

typedef struct {
    char *p;
    size_t len, cap;
} wn_buf;

wn_err wn_buf_reserve(wn_buf *b, size_t extra); /* room for len+extra+1 */
wn_err wn_buf_append(wn_buf *b, const void *p, size_t n);
wn_err wn_buf_puts(wn_buf *b, const char *s);
wn_err wn_buf_putc(wn_buf *b, char c);
wn_err wn_buf_printf(wn_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void wn_buf_clear(wn_buf *b) { b->len = 0; if (b->p) b->p[0] = 0; }
void wn_buf_free(wn_buf *b);

/* A growable array of token ids (owned). */
typedef struct {
    uint32_t *p;
    size_t n, cap;
} wn_ids;
wn_err wn_ids_push(wn_ids *v, uint32_t id);
void wn_ids_free(wn_ids *v);

/* A growable array of floats (owned): per-token scores and loss weights. */
typedef struct {
    float *p;
    size_t n, cap;
} wn_floats;
/* Sets the length to n (contents past the old length are undefined). */
wn_err wn_floats_resize(wn_floats *v, size_t n);
void wn_floats_free(wn_floats *v);

/* A borrowed byte range. */
typedef struct {
    const char *p;
    size_t n;
} wn_span;

#define WN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64: the project's one seeded generator (initialisation, shuffles,
 * sampling seeds). Advances *s and returns the next 64 random bits. */
static inline uint64_t wn_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Seconds on a monotonic clock, and CPU seconds of the whole process (all
 * threads). */
double wn_now(void);
double wn_cpu_now(void);

#endif
