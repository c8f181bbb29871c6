/* Context ObstacleDistance: keep sonar readings that lie within the sonar's range (C version). */
#include "ctx_ObstacleDistance.h"

bool ObstacleDistance_on_distance_from_sonar(const RangeSensor_distance_event *event,
                                             const ObstacleDistance_on_distance_from_sonar_discover *discover,
                                             ObstacleDistance_value *out)
{
    (void)discover;
    /* each sonar's own range: an attribute of the instance that sent the reading */
    if (event->value >= Sonar_get_maxRange(event->sender)) {
        return false;
    }
    out->position = event->position;
    out->value = event->value;
    return true;
}
