#include "harness_v5.h"
#include <criterion/criterion.h>
TestSuite(share, .fini = e2e_fini, .timeout = 30);
