/* lowbit-run: the static command-line runner for devices without Python.
 *   lowbit-run MODEL INPUT OUTPUT        run each input (codes, H*W*C bytes) -> int32 outputs
 *   lowbit-run --check MODEL INPUT GOLD  exit 0 when every output equals GOLD bit for bit, 1 if not
 *   lowbit-run --bench N MODEL INPUT     mean milliseconds per inference over N runs
 *   lowbit-run --info MODEL              kernels, input bytes, output values
 * Each form may start with --kernels FAMILY (default: the best this CPU runs; --info lists them).
 * INPUT may hold several inputs back to back (golden vectors); exit 2 on any error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit.h"

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "error: %s: %s\n", path, strerror(errno)); return NULL; }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (n == cap) { cap *= 2; buf = realloc(buf, cap); }
        if (!buf) { fclose(f); fprintf(stderr, "error: %s: out of memory\n", path); return NULL; }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    *size = n;
    return buf;
}

static int usage(void) {
    fprintf(stderr, "usage: lowbit-run [--kernels FAMILY] MODEL INPUT OUTPUT | --check MODEL INPUT GOLDEN | "
                    "--bench N MODEL INPUT | --info MODEL\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *family = NULL;
    if (argc > 2 && !strcmp(argv[1], "--kernels")) {
        family = argv[2];
        argc -= 2;
        argv += 2;
    }
    if (argc < 3) return usage();
    const char *mode = argv[1][0] == '-' ? argv[1] : "--run";
    int first = argv[1][0] == '-' ? 2 : 1, runs = 0;
    if (!strcmp(mode, "--bench")) { runs = atoi(argv[first++]); if (runs < 1) return usage(); }
    if (!strcmp(mode, "--info") ? argc != first + 1 : argc != first + (strcmp(mode, "--bench") ? 3 : 2))
        return usage();
    size_t model_size, input_size, gold_size = 0;
    unsigned char *blob = slurp(argv[first], &model_size);
    if (!blob) return 2;
    char err[256];
    lb_model *model = lb_load(blob, model_size, err, sizeof err);
    if (!model) { fprintf(stderr, "error: %s: %s\n", argv[first], err); return 2; }
    if (family && lb_use_kernels(model, family)) {
        fprintf(stderr, "error: this CPU cannot run the '%s' kernels (lowbit-run --info lists those it runs)\n",
                family);
        lb_free(model);
        free(blob);
        return 2;
    }
    size_t in_bytes = lb_input_bytes(model), out_count = lb_output_count(model);
    if (!strcmp(mode, "--info")) {
        printf("kernels %s\nfamilies", lb_kernels(model));
        for (size_t i = 0; lb_kernel_families(model, i); i++) printf(" %s", lb_kernel_families(model, i));
        printf("\ninput_bytes %zu\noutput_values %zu\n", in_bytes, out_count);
        return 0;
    }
    unsigned char *input = slurp(argv[first + 1], &input_size);
    if (!input) return 2;
    if (input_size == 0 || input_size % in_bytes) {
        fprintf(stderr, "error: %s: %zu bytes is not a whole number of inputs of %zu bytes\n",
                argv[first + 1], input_size, in_bytes);
        return 2;
    }
    size_t count = input_size / in_bytes;
    int32_t *out = malloc(count * out_count * 4);
    if (!out) { fprintf(stderr, "error: out of memory\n"); return 2; }
    if (runs) {
        struct timespec t0, t1;
        lb_run(model, input, out); /* warm-up */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int r = 0; r < runs; r++) lb_run(model, input, out);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / runs;
        printf("%.3f ms per inference (%s kernels)\n", ms, lb_kernels(model));
        return 0;
    }
    for (size_t i = 0; i < count; i++) lb_run(model, input + i * in_bytes, out + i * out_count);
    if (!strcmp(mode, "--check")) {
        unsigned char *gold = slurp(argv[first + 2], &gold_size);
        if (!gold) return 2;
        if (gold_size != count * out_count * 4) {
            fprintf(stderr, "error: %s: %zu bytes, expected %zu (%zu outputs of %zu int32)\n",
                    argv[first + 2], gold_size, count * out_count * 4, count, out_count);
            return 2;
        }
        for (size_t i = 0; i < count * out_count; i++) {
            int32_t want;
            memcpy(&want, gold + 4 * i, 4);
            if (out[i] != want) {
                printf("MISMATCH input %zu value %zu: got %d, golden %d\n", i / out_count,
                       i % out_count, out[i], want);
                return 1;
            }
        }
        printf("OK %zu inputs, %zu values each, bit-exact (%s kernels)\n", count, out_count,
               lb_kernels(model));
        /* freed, so that the sanitized build's leak check covers lb_free */
        free(gold); free(out); free(input); free(blob);
        lb_free(model);
        return 0;
    }
    FILE *f = fopen(argv[first + 2], "wb");
    if (!f || fwrite(out, 4, count * out_count, f) != count * out_count || fclose(f)) {
        fprintf(stderr, "error: %s: cannot write\n", argv[first + 2]);
        return 2;
    }
    return 0;
}
