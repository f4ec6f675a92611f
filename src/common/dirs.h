/* dirs.h - creating a directory and its missing parents. */
#ifndef CLUNET_COMMON_DIRS_H
#define CLUNET_COMMON_DIRS_H

/*
 * Creates `path` and any missing parents (mode 0755); existing ones are fine. Returns 1 on success; on failure
 * 0 with errno set and `path` cut after the component that could not be created, for the message.
 */
int cn_make_dirs(char *path);

#endif
