/* Context Collision: the bumper state, pushed on change and pulled by DriveMode. */
#include "ctx_Collision.h"

static bool pressed;

bool Collision_on_pressed_from_bumper(const Bumper_pressed_event *event,
                                      const Collision_on_pressed_from_bumper_discover *discover,
                                      Collision_value *out)
{
    bool changed = event->value != pressed;
    (void)discover;
    pressed = event->value;
    *out = pressed;
    return changed;
}

void Collision_when_required(const Collision_when_required_discover *discover, Collision_value *out)
{
    (void)discover;
    *out = pressed;
}
