/* A board for the host: main() registers the devices and plays a scenario.
   On a Cortex-M board the actions drive PWM and GPIO instead, and a timer calls ds_tick(). */
#include <stdio.h>

#include "diaspec_runtime.h"

enum { SONAR_FRONT = 0, BUMPER = 1, BASE = 2, LED = 3, SONAR_REAR = 4 };

int main(void)
{
    ds_init(0);
    ds_register_device(SONAR_FRONT, DS_DEVICE_Sonar);
    ds_register_device(BUMPER, DS_DEVICE_Bumper);
    ds_register_device(BASE, DS_DEVICE_DriveBase);
    ds_register_device(LED, DS_DEVICE_Led);
    ds_register_device(SONAR_REAR, DS_DEVICE_Sonar);
    Sonar_set_attributes(SONAR_FRONT, &(Sonar_attributes){ .maxRange = 4.0f, .mount = "front" });
    Sonar_set_attributes(SONAR_REAR, &(Sonar_attributes){ .maxRange = 2.0f, .mount = "rear" });
    Bumper_set_attributes(BUMPER, &(Bumper_attributes){ .mount = "front" });
    DriveBase_set_attributes(BASE, &(DriveBase_attributes){ .mount = "chassis" });
    Led_set_attributes(LED, &(Led_attributes){ .mount = "top" });
    RangeSensor_publish_distance(SONAR_FRONT, 6.0f, SonarPosition_FRONT);
    ds_run_pending();
    printf("-- near obstacle\n");
    RangeSensor_publish_distance(SONAR_FRONT, 0.3f, SonarPosition_FRONT);
    ds_run_pending();
    printf("-- bumper\n");
    Bumper_publish_pressed(BUMPER, true);
    ds_run_pending();
    /* while stopped: the front sonar sees 1.5 m, the rear one 0.1 m; Clearance (grouped by mount)
       counts the front only, so the status LED blinks once (it would blink twice for 0.1 m) */
    RangeSensor_publish_distance(SONAR_FRONT, 1.5f, SonarPosition_FRONT);
    RangeSensor_publish_distance(SONAR_REAR, 0.1f, SonarPosition_FRONT);
    ds_run_pending();
    printf("-- 400 ms\n");
    ds_tick(400);
    printf("dropped %lu\n", (unsigned long)ds_dropped_events());
    return 0;
}
