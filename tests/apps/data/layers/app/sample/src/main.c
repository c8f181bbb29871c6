/* The sample program of tests/apps: it tests itself and prints checksums, so the -Oz and the
   tuned builds can be compared by their output on every target (qemu-user, the MPS2 board).
   On Linux, `sample --serve` runs as a service: a trace line per second, forever. */
#define _DEFAULT_SOURCE /* sleep() under -std=c11 */
#include <stdio.h>
#include <string.h>
#ifdef __linux__
#include <unistd.h>
#endif

#include "checksum.h"
#include "sample.h"

#define COUNT 300

static uint32_t values[COUNT], copy[COUNT];
static uint8_t buffer[1024];

static int self_test(void)
{
    int failures = 0;
    uint32_t seed = 2463534242u;
    for (size_t i = 0; i < sizeof buffer; i++) {
        buffer[i] = (uint8_t)xorshift32(&seed);
    }
    const char *check = "123456789";
    uint32_t known = crc32((const uint8_t *)check, strlen(check));
    failures += known != 0xCBF43926u;
    printf("crc32(123456789) %08lx\n", (unsigned long)known);
    printf("crc32 %08lx fnv1a %08lx\n", (unsigned long)crc32(buffer, sizeof buffer),
           (unsigned long)fnv1a(buffer, sizeof buffer));
    uint32_t sorted = sort_check(values, copy, COUNT, 7u);
    failures += sorted == 0;
    printf("sort %08lx\n", (unsigned long)sorted);
    printf("telemetry %08lx\n", (unsigned long)telemetry_check(99u));
    pid_state pid;
    pid_init(&pid, 3 << 15, 1 << 12, 1 << 14, 100 << 16);
    int32_t position = 0, velocity = 0;
    for (int step = 0; step < 200; step++) {
        int32_t force = pid_step(&pid, 10 << 16, position);
        velocity += force / 32 - velocity / 8;
        position += velocity / 16;
    }
    printf("pid position %ld\n", (long)position);
    failures += position < (9 << 16) || position > (11 << 16);
    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures;
}

#ifdef __linux__
static void serve(void)
{
    uint32_t seed = 1u;
    for (unsigned long tick = 1;; tick++) {
        printf("sample tick %lu telemetry %08lx\n", tick, (unsigned long)telemetry_check(seed++));
        fflush(stdout);
        sleep(1);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--serve") == 0) {
        serve();
    }
    return self_test();
}
#else
int main(void)
{
    return self_test();
}
#endif
