#include <criterion/criterion.h>
/* placeholder until the module lands */
