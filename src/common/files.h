/* files.h - telling whether two paths name one file. */
#ifndef CLUNET_COMMON_FILES_H
#define CLUNET_COMMON_FILES_H

/* 1 if a and b both exist and are one file or folder (links, "./" and the like included), else 0. */
int cn_same_file(const char *a, const char *b);

#endif
