/* test-header.c - the public header compiles on its own, with nothing before it. */
#include "clunet.h"

int main(void)
{
    clunet_status st = CLUNET_OK;
    clunet_device_info info;
    info.index = 0;
    return (int)st + info.index;
}
