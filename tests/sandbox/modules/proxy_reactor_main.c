/* proxy_main.c as a WASI reactor that exports main (clang -mexec-model=reactor): the host runs
 * _initialize (the constructors), then main(0, 0). */
#define REACTOR_MAIN
#include "proxy_main.c"
