#include <stdint.h>
#include <stdlib.h>

#include "sample.h"

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Sort `count` pseudo-random values with qsort and with an insertion sort; 0 if they disagree,
   else a checksum of the sorted order. */
uint32_t sort_check(uint32_t *values, uint32_t *copy, int count, uint32_t seed)
{
    for (int i = 0; i < count; i++) {
        values[i] = copy[i] = xorshift32(&seed) % 100000u;
    }
    qsort(values, (size_t)count, sizeof values[0], compare_u32);
    for (int i = 1; i < count; i++) {
        uint32_t key = copy[i];
        int j = i - 1;
        while (j >= 0 && copy[j] > key) {
            copy[j + 1] = copy[j];
            j--;
        }
        copy[j + 1] = key;
    }
    uint32_t sum = 0;
    for (int i = 0; i < count; i++) {
        if (values[i] != copy[i]) {
            return 0;
        }
        sum = sum * 31u + values[i];
    }
    return sum;
}
