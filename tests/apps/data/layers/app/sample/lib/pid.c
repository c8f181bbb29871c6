#include "checksum.h"

static int32_t clamp(int32_t value, int32_t limit)
{
    return value > limit ? limit : value < -limit ? -limit : value;
}

static int32_t q16_mul(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b) >> 16);
}

void pid_init(pid_state *pid, int32_t kp, int32_t ki, int32_t kd, int32_t limit)
{
    pid->kp = kp;
    pid->ki = ki;
    pid->kd = kd;
    pid->integral = 0;
    pid->previous_error = 0;
    pid->limit = limit;
}

int32_t pid_step(pid_state *pid, int32_t setpoint, int32_t measured)
{
    int32_t error = setpoint - measured;
    pid->integral = clamp(pid->integral + error, pid->limit);
    int32_t derivative = error - pid->previous_error;
    pid->previous_error = error;
    return clamp(q16_mul(pid->kp, error) + q16_mul(pid->ki, pid->integral)
                 + q16_mul(pid->kd, derivative), pid->limit);
}
