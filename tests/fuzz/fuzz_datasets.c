/*
 * fuzz_datasets.c - libFuzzer target for the datasets.txt parser: any input
 * either parses or fails with a message naming its line; never a crash, a
 * leak or an out-of-bounds access.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/datasets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    cn_catalog cat;
    if (cn_catalog_parse(text, "fuzz", &cat) == CLUNET_OK) {
        if (cat.count > 0 && !cn_catalog_find(&cat, cat.sets[0].name)) abort();
        cn_catalog_free(&cat);
    } else if (!strstr(clunet_last_error(), "fuzz:")) {
        abort(); /* every parse error names the source and line */
    }
    free(text);
    return 0;
}
