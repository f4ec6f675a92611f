/* cmd_devices.c - `clunet devices [--json]`: every OpenCL device and its capabilities. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char *type_name(clunet_device_type t)
{
    switch (t) {
    case CLUNET_DEVICE_CPU: return "cpu";
    case CLUNET_DEVICE_GPU: return "gpu";
    case CLUNET_DEVICE_ACCELERATOR: return "accelerator";
    default: return "other";
    }
}

static void print_json(const clunet_device_info *d, int n, int selected)
{
    printf("{\"devices\": [");
    for (int i = 0; i < n; i++) {
        printf("%s\n  {\"index\": %d, \"type\": \"%s\", \"name\": ", i ? "," : "", d[i].index, type_name(d[i].type));
        cli_json_string(stdout, d[i].name);
        printf(", \"vendor\": ");
        cli_json_string(stdout, d[i].vendor);
        printf(", \"platform\": ");
        cli_json_string(stdout, d[i].platform);
        printf(", \"platform_version\": ");
        cli_json_string(stdout, d[i].platform_version);
        printf(", \"driver_version\": ");
        cli_json_string(stdout, d[i].driver_version);
        printf(", \"opencl_c_version\": ");
        cli_json_string(stdout, d[i].opencl_c_version);
        printf(", \"compute_units\": %u, \"clock_mhz\": %u, \"global_mem_bytes\": %llu, \"local_mem_bytes\": %llu, "
               "\"max_alloc_bytes\": %llu, \"global_cache_bytes\": %llu, \"max_work_group_size\": %zu, "
               "\"fp16\": %s, \"fp64\": %s, \"profiling\": %s, \"simulator\": %s, \"default\": %s}",
               d[i].compute_units, d[i].clock_mhz, (unsigned long long)d[i].global_mem_bytes,
               (unsigned long long)d[i].local_mem_bytes, (unsigned long long)d[i].max_alloc_bytes,
               (unsigned long long)d[i].global_cache_bytes, d[i].max_work_group_size, d[i].fp16 ? "true" : "false",
               d[i].fp64 ? "true" : "false", d[i].profiling ? "true" : "false", d[i].simulator ? "true" : "false",
               i == selected ? "true" : "false");
    }
    printf("\n], \"warnings\": ");
    cli_json_string(stdout, clunet_devices_warnings());
    printf("}\n");
}

static void print_text(const clunet_device_info *d, int n, int selected)
{
    for (int i = 0; i < n; i++) {
        printf("[%d]%s %s (%s%s)\n", d[i].index, i == selected ? "*" : " ", d[i].name, type_name(d[i].type),
               d[i].simulator ? ", simulator" : "");
        printf("     vendor %s; platform %s (%s); driver %s; %s\n", d[i].vendor, d[i].platform,
               d[i].platform_version, d[i].driver_version, d[i].opencl_c_version);
        printf("     %u compute units at %u MHz; global memory %.0f MiB (max allocation %.0f MiB, cache %.0f KiB); "
               "local memory %.0f KiB; max work-group %zu; fp16 %s; fp64 %s; profiling %s\n",
               d[i].compute_units, d[i].clock_mhz, d[i].global_mem_bytes / 1048576.0,
               d[i].max_alloc_bytes / 1048576.0, d[i].global_cache_bytes / 1024.0, d[i].local_mem_bytes / 1024.0,
               d[i].max_work_group_size,
               d[i].fp16 ? "yes" : "no", d[i].fp64 ? "yes" : "no", d[i].profiling ? "yes" : "no");
    }
    if (selected >= 0) printf("* = the default device (first GPU, else first CPU; CLUNET_DEVICE overrides)\n");
}

int cmd_devices(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: clunet devices [--json]\n\n"
                   "Lists every OpenCL device of every platform with its capabilities. Platforms that\n"
                   "fail to answer are reported and skipped. Select a device elsewhere with --device N\n"
                   "(index), --device gpu|cpu, --device TEXT (part of its name, vendor or platform) or\n"
                   "the CLUNET_DEVICE environment variable.\n\n"
                   "  --json   machine-readable output\n");
            return 0;
        }
        if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "clunet devices: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    const clunet_device_info *d;
    int n;
    if (clunet_devices(&d, &n) != CLUNET_OK) return cli_fail("devices");
    int selected = -1;
    if (clunet_device_select(NULL, &selected) != CLUNET_OK) selected = -1;
    const char *w = clunet_devices_warnings();
    if (*w) fprintf(stderr, "clunet: warning: %s", w);
    if (json) print_json(d, n, selected);
    else print_text(d, n, selected);
    return 0;
}
