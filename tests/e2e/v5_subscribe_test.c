#include "harness_v5.h"
#include <criterion/criterion.h>
TestSuite(v5_subscribe, .fini = e2e_fini, .timeout = 30);
