/* ringmqd entry point: placeholder until the broker lands. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "ringmqd: not built yet\n");
    return 1;
}
