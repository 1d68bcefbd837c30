/*
 * fs.h - file-system helpers: directories, whole-file reads, atomic writes
 * (temporary name, flush, fsync, rename) and removal of run-owned trees.
 */
#ifndef WN_FS_H
#define WN_FS_H

#include "wn.h"

wn_err wn_mkdir_p(const char *path, wn_errbuf *err);
wn_err wn_read_file(const char *path, wn_buf *out, wn_errbuf *err);
wn_err wn_write_atomic(const char *path, const void *data, size_t n, wn_errbuf *err);
/* Removes path and everything below it; a missing path is not an error. */
wn_err wn_rm_tree(const char *path, wn_errbuf *err);
int wn_exists(const char *path);

#endif
