/* files.h - opening a file to read without waiting on a FIFO; telling whether two paths name one file. */
#ifndef CLUNET_COMMON_FILES_H
#define CLUNET_COMMON_FILES_H

#include <stdio.h>

#include "clunet.h"

/*
 * Opens path to read (binary) into *f. Anything but a regular file (a FIFO, a device, a folder) is refused,
 * "PATH: not a regular file", before an open or a read could wait on it for ever; a failed open gives
 * "PATH: cannot open: WHY" and leaves its errno (ENOENT: no such file).
 */
clunet_status cn_open_read(const char *path, FILE **f);

/* 1 if a and b both exist and are one file or folder (links, "./" and the like included), else 0. */
int cn_same_file(const char *a, const char *b);

#endif
