/* Context DriveMode: cruise, avoid a near obstacle, or stop on a collision. */
#include "ctx_DriveMode.h"

#define SAFE_DISTANCE 0.5f

static Mode mode = Mode_CRUISE;

static bool change(Mode next, DriveMode_value *out)
{
    if (next == mode) {
        return false;
    }
    mode = next;
    *out = next;
    return true;
}

bool DriveMode_on_obstacle_distance(const ObstacleDistance_value *value,
                                    const DriveMode_on_obstacle_distance_discover *discover,
                                    DriveMode_value *out)
{
    Collision_value collision = false;
    discover->collision(&collision);
    if (collision) {
        return change(Mode_STOPPED, out);
    }
    return change(value->value < SAFE_DISTANCE ? Mode_AVOID : Mode_CRUISE, out);
}

bool DriveMode_on_collision(const Collision_value *value, const DriveMode_on_collision_discover *discover,
                            DriveMode_value *out)
{
    (void)discover;
    return change(*value ? Mode_STOPPED : Mode_CRUISE, out);
}
