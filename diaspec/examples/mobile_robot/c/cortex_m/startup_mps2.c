/* Start-up for the ARM MPS2 AN386 board (Cortex-M4) as QEMU models it: a vector table, a reset
   handler that clears .bss and calls main(), and newlib's _write/_exit over semihosting so printf
   reaches the host console and main's status ends QEMU. */
#include <stdint.h>

extern int main(void);
extern uint32_t __bss_start__, __bss_end__, __stack_top;

void Reset_Handler(void);
void Default_Handler(void);
int _write(int fd, const char *buffer, int length);
void _exit(int status);

static int semihost(int operation, const void *argument)
{
    register int r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* The initial stack pointer, then the reset handler and the other exceptions. */
__attribute__((section(".isr_vector"), used)) static const struct {
    uint32_t *stack;
    void (*handlers[15])(void);
} vectors = {
    &__stack_top,
    { Reset_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
      0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler },
};

void Reset_Handler(void)
{
    for (uint32_t *word = &__bss_start__; word < &__bss_end__; word++) {
        *word = 0;
    }
    _exit(main());
}

void Default_Handler(void)
{
    _exit(99);
}

int _write(int fd, const char *buffer, int length)
{
    (void)fd;
    for (int i = 0; i < length; i++) {
        semihost(0x03, &buffer[i]); /* SYS_WRITEC */
    }
    return length;
}

void _exit(int status)
{
    /* SYS_EXIT: on 32-bit ARM its argument is the stop reason; ApplicationExit ends QEMU with
       status 0, RunTimeErrorUnknown with status 1 */
    semihost(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026u : 0x20023u));
    for (;;) {
    }
}
