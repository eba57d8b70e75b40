/* A Proxy-Wasm 0.2 filter whose set-up runs in main(), as TinyGo's proxy-wasm-go-sdk and the Rust SDK in
 * bin + reactor mode do: main() records that it ran, and the request headers callback tags the request
 * with it (x-main-ran: yes | no).  Built by clang for wasm32-wasi as a command (_start runs main), and
 * through proxy_reactor_main.c as a reactor exporting main (the host runs _initialize, then main(0, 0)).
 * Every step logs, so a test sees the order.  A command's argv picks how main ends:
 *   exit0  exit(0), i.e. proc_exit(0) before _start returns;
 *   exit3  exit(3);
 *   trap   a wasm trap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

IMPORT(proxy_log) int32_t proxy_log(int32_t level, const char *p, size_t n);
IMPORT(proxy_add_header_map_value) int32_t add_header(int32_t map, const char *k, size_t kn, const char *v, size_t vn);

static int main_ran;

static void say(const char *s) { proxy_log(2, s, strlen(s)); }

#ifdef REACTOR_MAIN
/* Only the reactor's: wasm-ld makes a command's every other export run the constructors again. */
__attribute__((constructor)) static void setup(void) { say("constructors ran"); }
#endif

EXPORT(proxy_abi_version_0_2_0) void version(void) {}
EXPORT(proxy_on_memory_allocate) void *allocate(size_t n) { return malloc(n); }
EXPORT(proxy_on_context_create) void on_create(uint32_t id, uint32_t parent) { say(parent ? "http context" : "root context"); }

EXPORT(proxy_on_request_headers) uint32_t on_request_headers(uint32_t id, uint32_t n, uint32_t end_of_stream) {
    const char *ran = main_ran ? "yes" : "no";
    add_header(0, "x-main-ran", 10, ran, strlen(ran));
    return 0;
}

#ifdef REACTOR_MAIN
EXPORT(main)
#endif
int main(int argc, char **argv) {
    main_ran = 1;
    say("main ran");
    if (argc > 1 && strcmp(argv[1], "exit0") == 0) exit(0);
    if (argc > 1 && strcmp(argv[1], "exit3") == 0) exit(3);
    if (argc > 1 && strcmp(argv[1], "trap") == 0) __builtin_trap();
    return 0;
}
