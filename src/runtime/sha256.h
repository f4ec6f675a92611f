/* sha256.h - SHA-256 (FIPS 180-4), for the kernel cache's keys and checksums. */
#ifndef CLUNET_SHA256_H
#define CLUNET_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct cn_sha256 {
    uint32_t h[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t used;     /* bytes waiting in block */
} cn_sha256;

void cn_sha256_init(cn_sha256 *s);
void cn_sha256_update(cn_sha256 *s, const void *data, size_t size);
void cn_sha256_final(cn_sha256 *s, uint8_t digest[32]);

/* Lower-case hex of a digest, 65 bytes with the terminator. */
void cn_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
