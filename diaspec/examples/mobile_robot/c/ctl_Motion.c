/* Controller Motion: drive orders and LED pattern for each mode. */
#include "ctl_Motion.h"

void Motion_on_drive_mode(const DriveMode_value *value, const Motion_on_drive_mode_discover *discover)
{
    Velocity turn = { 0.0f, 0.8f };
    Velocity cruise = { 0.4f, 0.0f };
    switch (*value) {
    case Mode_STOPPED:
        discover->drive_base_stop(DS_ALL_DEVICES);
        discover->led_set_pattern(DS_ALL_DEVICES, "stopped", 0);
        break;
    case Mode_AVOID:
        discover->drive_base_set_velocity(DS_ALL_DEVICES, turn);
        discover->led_set_pattern(Led_where_mount("top"), "avoid", 3);
        break;
    default:
        discover->drive_base_set_velocity(DS_ALL_DEVICES, cruise);
        break;
    }
}
