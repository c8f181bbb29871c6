/* Telemetry frames: each message packs its fields big-endian behind a header and a checksum,
   as a robot's serial protocol does (much alike code: what the tuner's outlining shrinks). */
#include <stdint.h>

#include "sample.h"

static uint8_t frame[64];

static uint32_t frame_sum(const uint8_t *data, int length)
{
    uint32_t sum = 0;
    for (int i = 0; i < length; i++) {
        sum = (sum << 1 | sum >> 31) ^ data[i];
    }
    return sum;
}

uint32_t pack_imu(int16_t ax, int16_t ay, int16_t az, int16_t gx, int16_t gy, int16_t gz)
{
    frame[0] = 0xA5; frame[1] = 0x01; frame[2] = 12;
    frame[3] = (uint8_t)(ax >> 8); frame[4] = (uint8_t)ax;
    frame[5] = (uint8_t)(ay >> 8); frame[6] = (uint8_t)ay;
    frame[7] = (uint8_t)(az >> 8); frame[8] = (uint8_t)az;
    frame[9] = (uint8_t)(gx >> 8); frame[10] = (uint8_t)gx;
    frame[11] = (uint8_t)(gy >> 8); frame[12] = (uint8_t)gy;
    frame[13] = (uint8_t)(gz >> 8); frame[14] = (uint8_t)gz;
    return frame_sum(frame, 15);
}

uint32_t pack_odometry(int32_t x, int32_t y, int32_t heading, int32_t speed)
{
    frame[0] = 0xA5; frame[1] = 0x02; frame[2] = 16;
    frame[3] = (uint8_t)(x >> 24); frame[4] = (uint8_t)(x >> 16);
    frame[5] = (uint8_t)(x >> 8); frame[6] = (uint8_t)x;
    frame[7] = (uint8_t)(y >> 24); frame[8] = (uint8_t)(y >> 16);
    frame[9] = (uint8_t)(y >> 8); frame[10] = (uint8_t)y;
    frame[11] = (uint8_t)(heading >> 24); frame[12] = (uint8_t)(heading >> 16);
    frame[13] = (uint8_t)(heading >> 8); frame[14] = (uint8_t)heading;
    frame[15] = (uint8_t)(speed >> 24); frame[16] = (uint8_t)(speed >> 16);
    frame[17] = (uint8_t)(speed >> 8); frame[18] = (uint8_t)speed;
    return frame_sum(frame, 19);
}

uint32_t pack_battery(uint16_t millivolts, int16_t milliamps, uint8_t percent, uint8_t cells)
{
    frame[0] = 0xA5; frame[1] = 0x03; frame[2] = 6;
    frame[3] = (uint8_t)(millivolts >> 8); frame[4] = (uint8_t)millivolts;
    frame[5] = (uint8_t)(milliamps >> 8); frame[6] = (uint8_t)milliamps;
    frame[7] = percent; frame[8] = cells;
    return frame_sum(frame, 9);
}

uint32_t pack_motors(int16_t left, int16_t right, int16_t left_current, int16_t right_current)
{
    frame[0] = 0xA5; frame[1] = 0x04; frame[2] = 8;
    frame[3] = (uint8_t)(left >> 8); frame[4] = (uint8_t)left;
    frame[5] = (uint8_t)(right >> 8); frame[6] = (uint8_t)right;
    frame[7] = (uint8_t)(left_current >> 8); frame[8] = (uint8_t)left_current;
    frame[9] = (uint8_t)(right_current >> 8); frame[10] = (uint8_t)right_current;
    return frame_sum(frame, 11);
}

uint32_t pack_range(uint16_t front, uint16_t left, uint16_t right, uint16_t rear)
{
    frame[0] = 0xA5; frame[1] = 0x05; frame[2] = 8;
    frame[3] = (uint8_t)(front >> 8); frame[4] = (uint8_t)front;
    frame[5] = (uint8_t)(left >> 8); frame[6] = (uint8_t)left;
    frame[7] = (uint8_t)(right >> 8); frame[8] = (uint8_t)right;
    frame[9] = (uint8_t)(rear >> 8); frame[10] = (uint8_t)rear;
    return frame_sum(frame, 11);
}

uint32_t telemetry_check(uint32_t seed)
{
    uint32_t sum = 0;
    for (int i = 0; i < 50; i++) {
        uint32_t r = xorshift32(&seed);
        sum += pack_imu((int16_t)r, (int16_t)(r >> 3), (int16_t)(r >> 7), (int16_t)(r >> 11),
                        (int16_t)(r >> 13), (int16_t)(r >> 17));
        sum ^= pack_odometry((int32_t)r, (int32_t)(r * 3u), (int32_t)(r >> 5), (int32_t)(r ^ 77u));
        sum += pack_battery((uint16_t)r, (int16_t)(r >> 9), (uint8_t)(r >> 20), 4);
        sum ^= pack_motors((int16_t)(r >> 2), (int16_t)(r >> 4), (int16_t)(r >> 6), (int16_t)(r >> 8));
        sum += pack_range((uint16_t)(r >> 1), (uint16_t)(r >> 10), (uint16_t)(r >> 12), (uint16_t)(r >> 14));
    }
    return sum;
}
