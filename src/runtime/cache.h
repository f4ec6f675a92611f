/*
 * cache.h - the on-disk cache of compiled kernel binaries.
 *
 * One file per program: <dir>/<key>.bin, where key = SHA-256 of the format
 * version, source, build options, device name, driver and platform versions.
 * The file holds a magic, the binary's size and SHA-256, then the binary.
 * Writes go to a temporary file renamed into place, so concurrent processes
 * and crashes never leave a half-written entry. Every failure is silent: a
 * missing, stale or corrupt entry just means compiling again.
 */
#ifndef CLUNET_RUNTIME_CACHE_H
#define CLUNET_RUNTIME_CACHE_H

#include <stddef.h>

#include "runtime/runtime.h"

void cn_cache_key(const clunet_device_info *dev, const char *source, const char *options, char key[65]);

/* Returns a malloc'ed binary and its size, or NULL if there is no valid entry. */
unsigned char *cn_cache_load(const char *key, size_t *size);

void cn_cache_store(const char *key, const unsigned char *binary, size_t size);

/* Path of the entry for key; 0 if no cache directory can be determined. */
int cn_cache_path(const char *key, char *out, size_t size);

#endif
