/* Action Drive on the host: print the order (a board drives its motor controller here). */
#include <stdio.h>

#include "act_Drive.h"

void Drive_setVelocity(ds_device_id ds_device, Velocity v)
{
    printf("order %u Drive.setVelocity(%.1f, %.1f)\n", (unsigned)ds_device, (double)v.linear, (double)v.angular);
}

void Drive_stop(ds_device_id ds_device)
{
    printf("order %u Drive.stop()\n", (unsigned)ds_device);
}
