/* tests/ml_tuner: always_inline functions a pass order must never leave un-inlined (their
   contract: GCC rejects code where it cannot inline them). At -Oz they are still present in the
   IR clang hands its optimizer; the always-inliner, which clang always runs, removes them. */
#include <stdint.h>

static inline __attribute__((always_inline)) uint32_t rotl(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static inline __attribute__((always_inline)) uint32_t mix(uint32_t h, uint32_t v)
{
    h ^= rotl(v * 0x9E3779B1u, 13);
    return rotl(h, 7) * 5u + 0xE6546B64u;
}

__attribute__((always_inline)) inline uint32_t mix_twice(uint32_t h, uint32_t v)
{
    return mix(mix(h, v), v ^ h);
}

uint32_t hash(const uint32_t *data, int n)
{
    uint32_t h = 0x12345678u;
    for (int i = 0; i < n; i++) {
        h = mix(h, data[i]);
    }
    return mix_twice(h, (uint32_t)n);
}

uint32_t hash_pair(uint32_t a, uint32_t b)
{
    return mix(mix(0, a), b) ^ mix_twice(a, b);
}
