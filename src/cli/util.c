/* util.c - small helpers shared by the subcommands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_fail(const char *context)
{
    fprintf(stderr, "clunet: %s: %s\n", context, clunet_last_error());
    return 1;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int cli_parse_views(const char *s, int *out)
{
    int v;
    if (!cli_parse_int(s, 1, 8, &v) || (v != 1 && v != 4 && v != 8)) return 0;
    *out = v;
    return 1;
}

int cli_parse_on_off(const char *s, int *out)
{
    if (strcmp(s, "on") && strcmp(s, "off")) return 0;
    *out = !strcmp(s, "on");
    return 1;
}

int cli_bad_value(const char *option, const char *value)
{
    fprintf(stderr, "clunet: %s %s: not a valid value (see --help)\n", option, value);
    return 2;
}
