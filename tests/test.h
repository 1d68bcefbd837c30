/*
 * test.h - the unit-test harness: tests register themselves in a table,
 * the runner (tests/unit/main.c) runs them all (or those whose name
 * contains argv[1]) and prints "N passed, N failed" as its last line.
 */
#ifndef WN_TEST_H
#define WN_TEST_H

#include <stdio.h>
#include <string.h>

typedef struct wn_test {
    const char *name;
    void (*fn)(int *failed);
    struct wn_test *next;
} wn_test;

void wn_test_register(wn_test *t);

#define TEST(name)                                                              \
    static void test_##name(int *wn_failed_);                                   \
    static wn_test wn_test_##name = {#name, test_##name, 0};                    \
    __attribute__((constructor)) static void wn_test_reg_##name(void) {         \
        wn_test_register(&wn_test_##name);                                      \
    }                                                                           \
    static void test_##name(int *wn_failed_)

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            *wn_failed_ = 1;                                                    \
        }                                                                       \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                      \
    do {                                                                        \
        long long a_ = (long long)(a), b_ = (long long)(b);                     \
        if (a_ != b_) {                                                         \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n",         \
                    __FILE__, __LINE__, #a, #b, a_, b_);                        \
            *wn_failed_ = 1;                                                    \
        }                                                                       \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                      \
    do {                                                                        \
        const char *a_ = (a), *b_ = (b);                                        \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                \
            fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n",    \
                    __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",             \
                    b_ ? b_ : "(null)");                                        \
            *wn_failed_ = 1;                                                    \
        }                                                                       \
    } while (0)

/* Path of ../shared relative to the repo root, or NULL (tests skip). */
const char *wn_test_shared_dir(void);
#define SKIP(why)                                                               \
    do {                                                                        \
        fprintf(stderr, "  SKIP: %s\n", why);                                   \
        return;                                                                 \
    } while (0)

#endif
