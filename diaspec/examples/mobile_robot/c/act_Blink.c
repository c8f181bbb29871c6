/* Action Blink on the host: print the order (a board toggles a GPIO here). */
#include <stdio.h>

#include "act_Blink.h"

void Blink_setPattern(ds_device_id ds_device, const char *pattern, int32_t times)
{
    printf("order %u Blink.setPattern(%s, %ld)\n", (unsigned)ds_device, pattern, (long)times);
}
