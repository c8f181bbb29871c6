#ifndef SAMPLE_H
#define SAMPLE_H
#include <stdint.h>

uint32_t xorshift32(uint32_t *state);
uint32_t sort_check(uint32_t *values, uint32_t *copy, int count, uint32_t seed);
uint32_t telemetry_check(uint32_t seed);
#endif
