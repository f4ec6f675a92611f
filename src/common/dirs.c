/* dirs.c - creating a directory and its missing parents. */
#include <errno.h>
#include <sys/stat.h>

#include "common/dirs.h"

int cn_make_dirs(char *path)
{
    if (!*path) {
        errno = ENOENT;
        return 0;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0755) && errno != EEXIST) return 0;
        *p = '/';
    }
    return !mkdir(path, 0755) || errno == EEXIST;
}
