/*
 * image_pnm.c - binary PGM (P5) and PPM (P6), maxval 1 to 65535. Samples wider
 * than a byte are big-endian, as the Netpbm format says. STARE ships these.
 */
#include "common/error.h"
#include "data/image_codecs.h"

/* Reads one header number after whitespace and '#' comments; -1 when absent. */
static int64_t header_number(const uint8_t *d, size_t n, size_t *pos)
{
    size_t p = *pos;
    for (;;) {
        while (p < n && (d[p] == ' ' || d[p] == '\t' || d[p] == '\n' || d[p] == '\r' ||
                         d[p] == '\v' || d[p] == '\f'))
            p++;
        if (p < n && d[p] == '#') {
            while (p < n && d[p] != '\n' && d[p] != '\r') p++;
            continue;
        }
        break;
    }
    int64_t v = 0;
    size_t start = p;
    while (p < n && d[p] >= '0' && d[p] <= '9' && p - start < 10) v = v * 10 + (d[p++] - '0');
    if (p == start || (p < n && d[p] >= '0' && d[p] <= '9')) return -1;
    *pos = p;
    return v;
}

clunet_status cn_decode_pnm(const char *name, const uint8_t *d, size_t n, cn_image *img)
{
    int channels = d[1] == '6' ? 3 : 1;
    size_t pos = 2;
    int64_t width = header_number(d, n, &pos);
    int64_t height = header_number(d, n, &pos);
    int64_t maxval = header_number(d, n, &pos);
    if (width < 0 || height < 0 || maxval < 0 || pos >= n)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: truncated or malformed PNM header", name);
    if (maxval < 1 || maxval > 65535)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: PNM maxval %lld is not 1 to 65535", name,
                       (long long)maxval);
    pos++; /* the single whitespace byte that ends the header */
    int bytes = maxval > 255 ? 2 : 1;
    CN_TRY(cn_image_check_declared(name, "PNM", width, height, channels));
    uint64_t need = (uint64_t)width * (uint64_t)height * (uint64_t)channels * (uint64_t)bytes;
    if (need > n - pos)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: truncated PNM (%zu of %llu raster bytes)", name,
                       n - pos, (unsigned long long)need);
    CN_TRY(cn_image_alloc_declared(name, "PNM", width, height, channels, img));
    img->bits = bytes * 8;
    const uint8_t *s = d + pos;
    size_t count = (size_t)width * (size_t)height * (size_t)channels;
    for (size_t i = 0; i < count; i++) {
        unsigned v = bytes == 2 ? (unsigned)s[2 * i] << 8 | s[2 * i + 1] : s[i];
        if (v > (unsigned)maxval)
            return cn_fail(CLUNET_ERR_FORMAT, "%s: PNM sample %u exceeds maxval %lld", name, v,
                           (long long)maxval);
        img->data[i] = cn_sample_scale(v, (unsigned)maxval);
    }
    return CLUNET_OK;
}
