/* Context Clearance: the smallest distance the front-mounted sonars report. */
#include <string.h>

#include "ctx_Clearance.h"

void Clearance_on_periodic_distance_from_sonar(const Clearance_on_periodic_distance_from_sonar_group *groups,
                                               size_t group_count,
                                               const Clearance_on_periodic_distance_from_sonar_discover *discover,
                                               Clearance_value *out)
{
    float nearest = 10.0f;
    (void)discover;
    for (size_t g = 0; g < group_count; g++) {
        if (groups[g].key == NULL || strcmp(groups[g].key, "front") != 0) {
            continue;
        }
        for (size_t i = 0; i < groups[g].count; i++) {
            if (groups[g].readings[i].value < nearest) {
                nearest = groups[g].readings[i].value;
            }
        }
    }
    *out = nearest;
}
