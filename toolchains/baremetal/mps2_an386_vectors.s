@ Cortex-M vector table for QEMU's MPS2 AN386: the initial stack pointer, reset -> newlib's _start,
@ every fault and interrupt -> a handler that spins (a test's timeout reports it).
    .syntax unified
    .thumb
    .section .isr_vector, "a", %progbits
    .word __stack_top
    .word _start
    .rept 14
    .word fleetforge_fault
    .endr

    .text
    .thumb_func
    .weak fleetforge_fault
fleetforge_fault:
    b fleetforge_fault
