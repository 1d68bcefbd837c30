/*
 * fs.c - file-system helpers (fs.h).
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int wn_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

wn_err wn_mkdir_p(const char *path, wn_errbuf *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(tmp, 0777) && errno != EEXIST)
                return wn_fail(err, WN_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return WN_OK;
}

wn_err wn_read_file(const char *path, wn_buf *out, wn_errbuf *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    wn_err e = WN_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((e = wn_buf_append(out, chunk, n))) break;
    if (!e && ferror(f)) e = wn_fail(err, WN_ERR_IO, "%s: read error", path);
    if (!e && !out->p) e = wn_buf_reserve(out, 0);
    fclose(f);
    return e;
}

wn_err wn_write_atomic(const char *path, const void *data, size_t n, wn_errbuf *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(data, 1, n, f) != n;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        remove(tmp);
        return wn_fail(err, WN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return WN_OK;
}

wn_err wn_rm_tree(const char *path, wn_errbuf *err)
{
    struct stat sb;
    if (lstat(path, &sb)) return errno == ENOENT ? WN_OK : wn_fail(err, WN_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return wn_fail(err, WN_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            wn_err e = wn_rm_tree(sub, err);
            if (e) { closedir(d); return e; }
        }
        closedir(d);
        if (rmdir(path)) return wn_fail(err, WN_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        return WN_OK;
    }
    if (unlink(path)) return wn_fail(err, WN_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return WN_OK;
}
