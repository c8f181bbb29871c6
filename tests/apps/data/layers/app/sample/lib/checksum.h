/* Checksums and a fixed-point controller: the sample's library (tests/apps). */
#ifndef SAMPLE_CHECKSUM_H
#define SAMPLE_CHECKSUM_H
#include <stddef.h>
#include <stdint.h>

uint32_t crc32(const uint8_t *data, size_t length);
uint32_t fnv1a(const uint8_t *data, size_t length);

/* A PID controller in Q16.16 fixed point, as a motor controller runs it. */
typedef struct {
    int32_t kp, ki, kd;
    int32_t integral, previous_error, limit;
} pid_state;

void pid_init(pid_state *pid, int32_t kp, int32_t ki, int32_t kd, int32_t limit);
int32_t pid_step(pid_state *pid, int32_t setpoint, int32_t measured);
#endif
