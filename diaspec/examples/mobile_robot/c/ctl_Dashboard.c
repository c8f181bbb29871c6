/* Controller Dashboard: blink faster as obstacles get closer. */
#include "ctl_Dashboard.h"

void Dashboard_on_clearance(const Clearance_value *value, const Dashboard_on_clearance_discover *discover)
{
    int32_t times = *value >= 2.0f ? 0 : *value >= 1.0f ? 1 : 2;
    discover->led_set_pattern(DS_ALL_DEVICES, "clearance", times);
}
