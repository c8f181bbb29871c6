/* Context ObstacleDistance: keep sonar readings that lie within range (C version). */
#include "ctx_ObstacleDistance.h"

#define MAX_RANGE 4.0f

bool ObstacleDistance_on_distance_from_sonar(const RangeSensor_distance_event *event,
                                             const ObstacleDistance_on_distance_from_sonar_discover *discover,
                                             ObstacleDistance_value *out)
{
    (void)discover;
    if (event->value >= MAX_RANGE) {
        return false;
    }
    out->position = event->position;
    out->value = event->value;
    return true;
}
