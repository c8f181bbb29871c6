/* FleetForge low-bit runtime: loads a .lbit artifact (lowbit/artifact.py, docs/lowbit.md) and
 * runs it with bit-serial (AND + popcount) and int8 kernels. Single-threaded, no allocation
 * while running, C99 + the target's SIMD intrinsics. */
#ifndef LOWBIT_H
#define LOWBIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LB_FORMAT_VERSION 1
#define LB_PACKING_LAYOUT 1

typedef struct lb_model lb_model;

/* Parse an artifact (the bytes are copied). Returns NULL and writes a one-line reason to err. */
lb_model *lb_load(const uint8_t *blob, size_t size, char *err, size_t errlen);
void lb_free(lb_model *model);
/* Bytes of one input (H*W*C codes, one byte each) and int32 values of one output. */
size_t lb_input_bytes(const lb_model *model);
size_t lb_output_count(const lb_model *model);
/* Run one inference: input codes -> int32 outputs. Returns 0. */
int lb_run(lb_model *model, const uint8_t *input, int32_t *output);
/* The kernel family in use: "avx512-lut" (x86-64 with AVX-512 VBMI: table lookups for low-bit
 * convs, VNNI for int8), "avx512" (VPOPCNTQ bit-serial, VNNI), "neon" or "portable". The loader
 * picks the best one the CPU runs. */
const char *lb_kernels(const lb_model *model);
/* The families this CPU runs, index 0, 1, ...; NULL past the last. */
const char *lb_kernel_families(const lb_model *model, size_t index);
/* Use another family (tests compare every family against the reference; benches compare them).
 * Returns 0, or -1 when this CPU cannot run it. */
int lb_use_kernels(lb_model *model, const char *family);
/* Per-node timing (off by default): enable, then read each node's milliseconds of the last run. */
void lb_profile(lb_model *model, int enable);
size_t lb_node_count(const lb_model *model);
double lb_node_ms(const lb_model *model, size_t node, int *op);

#ifdef __cplusplus
}
#endif
#endif
