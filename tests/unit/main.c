/*
 * main.c - runs every registered unit test (or those whose name contains
 * argv[1]) and ends with the summary line "N passed, N failed".
 */
#include "../test.h"

#include <stdlib.h>
#include <unistd.h>

static wn_test *tests;

void wn_test_register(wn_test *t)
{
    /* Constructors run in link order; keep registration order stable. */
    wn_test **pp = &tests;
    while (*pp) pp = &(*pp)->next;
    *pp = t;
}

const char *wn_test_shared_dir(void)
{
    const char *d = getenv("WN_SHARED");
    if (!d) d = "../shared";
    return access(d, R_OK) == 0 ? d : NULL;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (wn_test *t = tests; t; t = t->next) {
        if (argc > 1 && !strstr(t->name, argv[1])) continue;
        int f = 0;
        t->fn(&f);
        if (f) {
            fprintf(stderr, "FAIL %s\n", t->name);
            failed++;
        } else {
            passed++;
        }
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
