/* Controller Dashboard: the status LED blinks faster as obstacles get closer. */
#include "ctl_Dashboard.h"

static int32_t last_times = -1;

void Dashboard_on_clearance(const Clearance_value *value, const Dashboard_on_clearance_discover *discover)
{
    int32_t times = *value >= 2.0f ? 0 : *value >= 1.0f ? 1 : 2;
    if (times != last_times) { /* tell the LED only about changes */
        last_times = times;
        discover->led_set_pattern(Led_where_mount("top"), "clearance", times);
    }
}
