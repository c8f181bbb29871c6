/* tests/ml_tuner: the program around digest.c. With an argument it also prints where its code
   ends, which differs for any build of another size: a stand-in for a miscompile (a run that
   differs from clang -Oz's), which the tuner must reject. */
#include <stdint.h>
#include <stdio.h>

uint32_t digest_any(const void *p, int len, uint32_t seed);
uint32_t digest_words(const uint32_t *p, int n);
extern char etext[];

int main(int argc, char **argv)
{
    static const char text[] = "FleetForge builds small firmware for robots.";
    uint32_t words[6] = {1, 1, 2, 3, 5, (uint32_t)argc};
    printf("%08x %08x %08x\n", (unsigned)digest_any(text, sizeof text - 1, 1),
           (unsigned)digest_any(text + 1, sizeof text - 2, 2), (unsigned)digest_words(words, 6));
    if (argc > 1) {
        printf("code ends at %p\n", (void *)etext);
    }
    return 0;
}
