/* cmd_version.c - `clunet version`. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_version(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: clunet version\n\nPrints clunet's version.\n");
        return 0;
    }
    printf("clunet %s\n", clunet_version());
    return 0;
}
