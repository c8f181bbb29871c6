/* A small motor-controller style module for tests/ml_tuner: PID loop, ring buffer, CRC. */
#include <stdint.h>

typedef struct {
    int32_t kp, ki, kd;
    int32_t integral, previous, limit;
} pid_t_;

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

int32_t pid_step(pid_t_ *pid, int32_t setpoint, int32_t measured) {
    int32_t error = setpoint - measured;
    pid->integral = clamp(pid->integral + error, -pid->limit, pid->limit);
    int32_t derivative = error - pid->previous;
    pid->previous = error;
    return clamp((pid->kp * error + pid->ki * pid->integral + pid->kd * derivative) >> 8,
                 -32768, 32767);
}

#define RING 16
typedef struct { int16_t data[RING]; uint8_t head, count; } ring_t;

void ring_push(ring_t *r, int16_t v) {
    r->data[(r->head + r->count) % RING] = v;
    if (r->count < RING) r->count++; else r->head = (r->head + 1) % RING;
}

int32_t ring_average(const ring_t *r) {
    int32_t sum = 0;
    for (int i = 0; i < r->count; i++) sum += r->data[(r->head + i) % RING];
    return r->count ? sum / r->count : 0;
}

uint8_t crc8(const uint8_t *data, int len) {
    uint8_t crc = 0;
    for (int i = 0; i < len; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) crc = (crc & 0x80) ? (uint8_t)((crc << 1) ^ 0x07) : (uint8_t)(crc << 1);
    }
    return crc;
}

int32_t filter4(const int32_t taps[4], const int32_t x[4]) {
    int32_t acc = 0;
    for (int i = 0; i < 4; i++) acc += taps[i] * x[i];
    return acc;
}
