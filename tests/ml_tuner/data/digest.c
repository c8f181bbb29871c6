/* tests/ml_tuner: a hash specialised by an alignment argument; at -Oz the inliner copies it into
   each caller, which costs flash on Cortex-M4 (the tuner finds the knob that stops it). */
#include <stdint.h>
#include <string.h>
typedef enum { ALIGNED, UNALIGNED } align_t;
static uint32_t read32(const void *p, align_t a) {
    if (a == ALIGNED) return *(const uint32_t *)p;
    uint32_t v; memcpy(&v, p, 4); return v;
}
static uint32_t round32(uint32_t acc, uint32_t in) { acc += in * 2246822519u; acc = (acc << 13) | (acc >> 19); return acc * 2654435761u; }
static uint32_t digest(const uint8_t *p, int len, uint32_t seed, align_t a) {
    uint32_t v1 = seed + 1, v2 = seed + 2, v3 = seed, v4 = seed - 1;
    const uint8_t *end = p + len;
    while (p + 16 <= end) {
        v1 = round32(v1, read32(p, a)); v2 = round32(v2, read32(p + 4, a));
        v3 = round32(v3, read32(p + 8, a)); v4 = round32(v4, read32(p + 12, a)); p += 16;
    }
    uint32_t h = ((v1 << 1) | (v1 >> 31)) + ((v2 << 7) | (v2 >> 25)) + ((v3 << 12) | (v3 >> 20)) + ((v4 << 18) | (v4 >> 14));
    while (p + 4 <= end) { h += read32(p, a) * 3266489917u; h = ((h << 17) | (h >> 15)) * 668265263u; p += 4; }
    while (p < end) { h += (*p++) * 374761393u; h = ((h << 11) | (h >> 21)) * 2654435761u; }
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
    return h;
}
uint32_t digest_any(const void *p, int len, uint32_t seed) {
    if (((uintptr_t)p & 3) == 0) return digest(p, len, seed, ALIGNED);
    return digest(p, len, seed, UNALIGNED);
}
uint32_t digest_words(const uint32_t *p, int n) { return digest((const uint8_t *)p, n * 4, 7, ALIGNED); }
