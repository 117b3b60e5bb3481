#include "harness.h"
#include <criterion/criterion.h>
