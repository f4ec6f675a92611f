/*
 * test-ops - every op on every OpenCL device against the plain-C reference,
 * in the manner of ggml's test-backend-ops. See --help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/harness.h"
#include "ops/state.h"

static void usage(void)
{
    printf("usage: test-ops [--list] [--op NAME[,NAME...]] [--case TEXT] [--device SPEC] [--small] [--grad] [--stream] [--perf] [-v]\n\n"
           "Runs every op on every OpenCL device (simulators such as Oclgrind only when named with\n"
           "--device) and compares it with the plain-C reference in double precision.\n\n"
           "  --list         print the op names, one per line\n"
           "  --op NAMES     only these ops\n"
           "  --case TEXT    only the cases whose shape label contains TEXT (as printed, e.g. \"b2 expand N1\")\n"
           "  --device SPEC  only this device (index, gpu, cpu, or part of its name/platform)\n"
           "  --small        small shapes only (for Oclgrind and the one-core PoCL run)\n"
           "  --grad         also check each reference backward by central finite differences\n"
           "  --stream       streaming stores for every output that may take them, whatever its size\n"
           "                 (devices use them only for large outputs, where they measured faster)\n"
           "  --perf         time each case (median after warm-up): ms, GFLOP/s, GB/s\n"
           "  --ab KEY=A,B   with --perf: $CLUNET_TUNE's KEY=A and KEY=B (e.g. gemm_nn_rows=2,4) by turns, run by\n"
           "                 run, so both meet the same moments of a busy machine; medians and their B/A ratio\n"
           "  --ab kernels=DIR  the same for the built-in kernels against DIR's copies of cl/ (as CLUNET_KERNEL_DIR)\n"
           "  -v             a line for every passing case too\n"
           "The last line is `N passed, M failed`; the exit status is non-zero on any failure.\n");
}

int to_filter_matches(const char *filter, const char *op)
{
    size_t n = strlen(op);
    for (const char *p = filter; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, op, n)) return 1;
        p += len + (end != NULL);
    }
    return 0;
}

static void run_all(to_run *r)
{
    cases_conv(r);
    cases_pointwise(r);
}

int main(int argc, char **argv)
{
    to_state st;
    memset(&st, 0, sizeof st);
    to_run r = {0};
    r.st = &st;
    const char *device = NULL;
    int stream = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--list")) r.list = 1;
        else if (!strcmp(a, "--small")) r.small = 1;
        else if (!strcmp(a, "--grad")) r.grad = 1;
        else if (!strcmp(a, "--stream")) stream = 1;
        else if (!strcmp(a, "--perf")) r.perf = 1;
        else if (!strcmp(a, "-v")) r.verbose = 1;
        else if (!strcmp(a, "--op") && i + 1 < argc) st.filter = argv[++i];
        else if (!strcmp(a, "--case") && i + 1 < argc) st.case_filter = argv[++i];
        else if (!strcmp(a, "--ab") && i + 1 < argc) {
            static char key[128];
            const char *spec = argv[++i], *eq = strchr(spec, '=');
            char *end = NULL;
            if (!strncmp(spec, "kernels=", 8) && spec[8]) { /* a directory of cl/ files for B */
                snprintf(key, sizeof key, "kernels");
                r.ab_dir = spec + 8, r.ab[0] = 0, r.ab[1] = 1;
                end = key + strlen(key);
            } else if (eq && eq > spec && (size_t)(eq - spec) < sizeof key) {
                snprintf(key, sizeof key, "%.*s", (int)(eq - spec), spec);
                r.ab[0] = (int)strtol(eq + 1, &end, 10);
                if (end > eq + 1 && *end == ',') r.ab[1] = (int)strtol(end + 1, &end, 10);
                else end = NULL;
            }
            if (!end || *end || r.ab[0] < 0 || r.ab[1] < 0) {
                fprintf(stderr, "test-ops: --ab %s: expected KEY=A,B (a $CLUNET_TUNE key, two values >= 0) or kernels=DIR\n",
                        spec);
                return 2;
            }
            r.ab_key = key;
        }
        else if (!strcmp(a, "--device") && i + 1 < argc) device = argv[++i];
        else {
            fprintf(stderr, "test-ops: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (r.ab_key && !r.perf) {
        fprintf(stderr, "test-ops: --ab needs --perf\n");
        return 2;
    }
    if (r.list) {
        run_all(&r);
        for (int i = 0; i < st.op_name_count; i++) printf("%s\n", st.op_names[i]);
        return 0;
    }

    const clunet_device_info *devs;
    int n;
    if (clunet_devices(&devs, &n) != CLUNET_OK) {
        fprintf(stderr, "test-ops: %s\n", clunet_last_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    int chosen = -1;
    if (device && clunet_device_select(device, &chosen) != CLUNET_OK) {
        fprintf(stderr, "test-ops: %s\n", clunet_last_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    int ran = 0;
    for (int d = 0; d < n; d++) {
        if (chosen >= 0 ? d != chosen : devs[d].simulator) continue;
        char spec[16];
        snprintf(spec, sizeof spec, "%d", d);
        clunet_settings s;
        clunet_default_settings(&s);
        s.device = spec;
        if (clunet_context_create(&s, &r.ctx) != CLUNET_OK) {
            fprintf(stderr, "test-ops: device %d (%s): %s\n", d, devs[d].name, clunet_last_error());
            st.failed++;
            continue;
        }
        if (stream) r.ctx->stream_stores = 1, r.ctx->stream_floor = 0;
        printf("device %d: %s (%s)%s%s\n", d, devs[d].name, devs[d].platform, r.small ? ", small shapes" : "",
               stream ? ", streaming stores" : "");
        int before_pass = st.passed, before_fail = st.failed;
        run_all(&r);
        printf("device %d: %d passed, %d failed\n", d, st.passed - before_pass, st.failed - before_fail);
        clunet_context_destroy(r.ctx);
        r.ctx = NULL;
        ran++;
    }
    if (ran == 0 && st.failed == 0) {
        fprintf(stderr, "test-ops: no device to test\n");
        st.failed++;
    }
    if ((st.filter || st.case_filter) && st.passed + st.failed == 0) {
        fprintf(stderr, "test-ops: --op %s --case %s matched no case (see --list)\n", st.filter ? st.filter : "(any)",
                st.case_filter ? st.case_filter : "(any)");
        st.failed++;
    }
    printf("%d passed, %d failed\n", st.passed, st.failed);
    return st.failed ? 1 : 0;
}
