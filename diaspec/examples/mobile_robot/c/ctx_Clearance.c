/* Context Clearance: the smallest distance any sonar reports (C groups by hand). */
#include "ctx_Clearance.h"

void Clearance_on_periodic_distance_from_sonar(const RangeSensor_distance_event *readings, size_t count,
                                               const Clearance_on_periodic_distance_from_sonar_discover *discover,
                                               Clearance_value *out)
{
    float nearest = 10.0f;
    (void)discover;
    for (size_t i = 0; i < count; i++) {
        if (readings[i].value < nearest) {
            nearest = readings[i].value;
        }
    }
    *out = nearest;
}
