/* A tiny TAP test harness: each SBX_TEST is one TAP test point, so meson
 * (protocol: 'tap') counts every case, and a failed CHECK names its line. */
#ifndef SBX_TEST_H
#define SBX_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sbx_test_fn)(void);
struct sbx_test_case { const char *name; sbx_test_fn fn; };

static int sbx_test_failed_;
static const char *sbx_test_skip_;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("# %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
            sbx_test_failed_ = 1;                                                \
        }                                                                        \
    } while (0)

/* REQUIRE stops the current case: use it when later checks would crash. */
#define REQUIRE(cond)                                                            \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("# %s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);  \
            sbx_test_failed_ = 1;                                                \
            return;                                                              \
        }                                                                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                      \
        if (a_ != b_) {                                                          \
            printf("# %s:%d: %s == %s failed: %lld != %lld\n", __FILE__,         \
                   __LINE__, #a, #b, a_, b_);                                    \
            sbx_test_failed_ = 1;                                                \
        }                                                                        \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                       \
    do {                                                                         \
        const char *a_ = (a), *b_ = (b);                                         \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                 \
            printf("# %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__,     \
                   __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");    \
            sbx_test_failed_ = 1;                                                \
        }                                                                        \
    } while (0)

/* SKIP ends the current case as a TAP skip, for a case that needs a tool or
 * fixture this machine lacks. Checks that failed before it still count. */
#define SKIP(reason)                                                             \
    do {                                                                         \
        sbx_test_skip_ = (reason);                                               \
        return;                                                                  \
    } while (0)

#define SBX_TEST(name) static void name(void)
#define SBX_CASE(name) { #name, name }

static inline int sbx_test_run(const struct sbx_test_case *cases, size_t n)
{
    int failures = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("TAP version 13\n1..%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        sbx_test_failed_ = 0;
        sbx_test_skip_ = NULL;
        cases[i].fn();
        if (sbx_test_skip_ && !sbx_test_failed_)
            printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, sbx_test_skip_);
        else
            printf("%s %zu - %s\n", sbx_test_failed_ ? "not ok" : "ok", i + 1, cases[i].name);
        failures += sbx_test_failed_;
    }
    return failures ? 1 : 0;
}

#define SBX_TEST_MAIN(...)                                                       \
    int main(void)                                                               \
    {                                                                            \
        static const struct sbx_test_case cases_[] = {__VA_ARGS__};              \
        return sbx_test_run(cases_, sizeof cases_ / sizeof cases_[0]);           \
    }

/* Temp files of a test binary: sbx_test_path names a file in one directory
 * per process, made at first use and removed with everything in it at exit;
 * sbx_test_rmtree removes a directory a test made itself. */
#include <ftw.h>
#include <sys/stat.h>

static inline int sbx_test_rm_one_(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void sbx_test_rmtree(const char *dir)
{
    if (dir && dir[0]) nftw(dir, sbx_test_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *sbx_test_tmpdir_(void)
{
    static char dir[64];
    return dir;
}

static inline void sbx_test_tmpdir_rm_(void) { sbx_test_rmtree(sbx_test_tmpdir_()); }

static inline void sbx_test_path(char *out, size_t size, const char *name)
{
    char *dir = sbx_test_tmpdir_();
    if (!dir[0]) {
        snprintf(dir, 64, "/tmp/sbx-test-XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(sbx_test_tmpdir_rm_);
    }
    snprintf(out, size, "%s/%s", dir, name);
}

#endif
