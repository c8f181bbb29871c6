/* Start-up for bare-metal programs of target thumbv7em-none-eabi on the board its runner emulates,
   QEMU's ARM MPS2 AN386 (Cortex-M4): the vector table, a reset handler that zeroes .bss and calls
   main(), and newlib's _write/_exit over semihosting, so printf reaches the host's stdout and
   main's return value becomes QEMU's exit status (0, or 1 for any failure). */
#include <stdint.h>

extern int main(void);
extern uint32_t __bss_start__, __bss_end__, __stack_top;

void Reset_Handler(void);
void Fault_Handler(void);
int _write(int fd, const char *buffer, int length);
void _exit(int status);

enum { SYS_WRITEC = 0x03, SYS_EXIT = 0x18 };
enum { ADP_APPLICATION_EXIT = 0x20026, ADP_RUNTIME_ERROR = 0x20023 };

static int semihosting_call(int operation, const void *argument)
{
    register int r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Initial stack pointer, reset, then NMI, HardFault, MemManage, BusFault, UsageFault,
   4 reserved, SVCall, DebugMonitor, reserved, PendSV, SysTick. */
__attribute__((section(".isr_vector"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler,
    Fault_Handler,
};

void Reset_Handler(void)
{
    for (uint32_t *word = &__bss_start__; word < &__bss_end__; word++) {
        *word = 0;
    }
    _exit(main());
}

void Fault_Handler(void)
{
    _exit(99);
}

int _write(int fd, const char *buffer, int length)
{
    (void)fd;
    for (int i = 0; i < length; i++) {
        semihosting_call(SYS_WRITEC, &buffer[i]);
    }
    return length;
}

void _exit(int status)
{
    /* On 32-bit Arm SYS_EXIT takes the stop reason: ApplicationExit ends QEMU with status 0,
       RunTimeErrorUnknown with status 1. */
    semihosting_call(SYS_EXIT, (const void *)(uintptr_t)(status == 0 ? ADP_APPLICATION_EXIT
                                                                       : ADP_RUNTIME_ERROR));
    for (;;) {
    }
}
