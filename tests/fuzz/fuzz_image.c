/*
 * fuzz_image - libFuzzer target over every image decoder, through
 * cn_image_load_memory. Besides the sanitizers it checks what the API
 * promises: a failure names the input and leaves no image; a success gives
 * sane sizes and samples on the 0-255 scale.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "data/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_image img;
    if (cn_image_load_memory("fuzz-input", data, size, &img) != CLUNET_OK) {
        if (img.data || !strstr(clunet_last_error(), "fuzz-input")) __builtin_trap();
        return 0;
    }
    if (img.width < 1 || img.height < 1 || img.width > CN_IMAGE_MAX_SIDE ||
        img.height > CN_IMAGE_MAX_SIDE || (img.channels != 1 && img.channels != 3))
        __builtin_trap();
    size_t n = (size_t)img.width * img.height * img.channels;
    for (size_t i = 0; i < n; i++)
        if (!(img.data[i] >= 0.0f && img.data[i] <= 255.0f)) __builtin_trap();
    cn_image_free(&img);
    return 0;
}
