/* files.c - opening a file to read without waiting on a FIFO; telling whether two paths name one file. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/files.h"

clunet_status cn_open_read(const char *path, FILE **f)
{
    *f = NULL;
    /* O_NONBLOCK: a FIFO's open would wait for a writer; it is refused by its type instead */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), flags;
    if (fd < 0) {
        int why = errno;
        clunet_status st = cn_fail(CLUNET_ERR_IO, "%s: cannot open: %s", path, strerror(why));
        errno = why;
        return st;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cn_fail(CLUNET_ERR_IO, "%s: not a regular file", path);
    }
    if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 || !(*f = fdopen(fd, "rb"))) {
        clunet_status st = cn_fail(CLUNET_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    return CLUNET_OK;
}

int cn_same_file(const char *a, const char *b)
{
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}
