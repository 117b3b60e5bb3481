/*
 * opts: ringmq-bench's command line (see opts_usage for every option).
 */
#ifndef RINGMQ_BENCH_OPTS_H
#define RINGMQ_BENCH_OPTS_H

#include "bench.h"

#include <stdio.h>

/* Fill *o from argv (argv[1] is the scenario). 0, or -EINVAL after a
 * message on stderr. Strings in *o point into argv. */
int opts_parse(int argc, char **argv, struct bench_opts *o);

void opts_usage(FILE *f);

/* "conn", "p2p", "fanout" or "fanin". */
const char *opts_scenario_name(enum scenario s);

#endif
