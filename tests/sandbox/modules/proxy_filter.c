/* A Proxy-Wasm 0.2 filter for the sandbox tests (freestanding C, no SDK).  Every callback logs its
 * name and arguments; the plugin configuration picks what the filter does:
 *   "headers"  edit request headers (replace x-a, remove x-b, add x-c), round-trip the request map
 *              through get/set pairs, log :path, rewrite the response body;
 *   "deny"     a local 401 response with a header, from the request headers callback;
 *   "http"     an outbound proxy_http_call;
 *   "flood"    set shared data until the host refuses;
 *   "refuse"   proxy_on_configure returns false;
 *   "tick"     set a tick period and log the vm configuration. */
#include <stdint.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

IMPORT(proxy_log) int32_t proxy_log(int32_t level, const char *p, int32_t n);
IMPORT(proxy_get_header_map_value) int32_t get_header(int32_t map, const char *k, int32_t kn, char **rp, int32_t *rn);
IMPORT(proxy_add_header_map_value) int32_t add_header(int32_t map, const char *k, int32_t kn, const char *v, int32_t vn);
IMPORT(proxy_replace_header_map_value) int32_t replace_header(int32_t map, const char *k, int32_t kn, const char *v, int32_t vn);
IMPORT(proxy_remove_header_map_value) int32_t remove_header(int32_t map, const char *k, int32_t kn);
IMPORT(proxy_get_header_map_pairs) int32_t get_pairs(int32_t map, char **rp, int32_t *rn);
IMPORT(proxy_set_header_map_pairs) int32_t set_pairs(int32_t map, const char *p, int32_t n);
IMPORT(proxy_get_buffer_bytes) int32_t get_buffer(int32_t t, int32_t start, int32_t max, char **rp, int32_t *rn);
IMPORT(proxy_set_buffer_bytes) int32_t set_buffer(int32_t t, int32_t start, int32_t size, const char *p, int32_t n);
IMPORT(proxy_send_local_response) int32_t send_local(int32_t status, const char *d, int32_t dn, const char *b, int32_t bn,
                                                      const char *h, int32_t hn, int32_t grpc);
IMPORT(proxy_set_tick_period_milliseconds) int32_t set_tick(int32_t ms);
IMPORT(proxy_http_call) int32_t http_call(const char *u, int32_t un, const char *h, int32_t hn, const char *b, int32_t bn,
                                          const char *t, int32_t tn, int32_t timeout, int32_t *id);
IMPORT(proxy_set_shared_data) int32_t set_shared(const char *k, int32_t kn, const char *v, int32_t vn, int32_t cas);

extern unsigned char __heap_base;
static uintptr_t top;
static char mode[16];

EXPORT(proxy_on_memory_allocate) void *alloc(int32_t n) {
    if (!top) top = (uintptr_t)&__heap_base;
    uintptr_t p = (top + 7) & ~(uintptr_t)7, end = p + (uintptr_t)n;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (uintptr_t)-1) return 0;
    top = end;
    return (void *)p;
}

static int32_t len(const char *s) { int32_t n = 0; while (s[n]) n++; return n; }
static int same(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }
static void say(const char *s) { proxy_log(2, s, len(s)); }

static void say_num(const char *what, int32_t a, int32_t b) {
    char line[64];
    int32_t n = 0;
    while (what[n]) { line[n] = what[n]; n++; }
    int32_t vals[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        line[n++] = ' ';
        char digits[12];
        int32_t d = 0;
        uint32_t u = (uint32_t)vals[i];
        do { digits[d++] = (char)('0' + u % 10); u /= 10; } while (u);
        while (d) line[n++] = digits[--d];
    }
    proxy_log(2, line, n);
}

EXPORT(proxy_abi_version_0_2_1) void version(void) {}
EXPORT(proxy_on_context_create) void on_create(int32_t id, int32_t parent) { say_num("create", id, parent); }

EXPORT(proxy_on_vm_start) int32_t on_vm_start(int32_t root, int32_t size) {
    say_num("vm_start", root, size);
    return 1;
}

EXPORT(proxy_on_configure) int32_t on_configure(int32_t root, int32_t size) {
    char *p = 0;
    int32_t n = 0;
    say_num("configure", root, size);
    if (get_buffer(7, 0, size, &p, &n) == 0) {
        for (int32_t i = 0; i < n && i < 15; i++) mode[i] = p[i];
    }
    if (same(mode, "refuse")) return 0;
    if (same(mode, "tick")) {
        set_tick(250);
        if (get_buffer(6, 0, 64, &p, &n) == 0) proxy_log(2, p, n);
    }
    return 1;
}

static const char deny_headers[] =
    "\x01\x00\x00\x00" "\x10\x00\x00\x00" "\x05\x00\x00\x00" "www-authenticate\0" "Basic\0";

EXPORT(proxy_on_request_headers) int32_t on_request_headers(int32_t ctx, int32_t count, int32_t eos) {
    say_num("request_headers", count, eos);
    char *p = 0;
    int32_t n = 0;
    if (same(mode, "headers")) {
        replace_header(0, "x-a", 3, "2", 1);
        remove_header(0, "X-B", 3);
        add_header(0, "x-c", 3, "3", 1);
        if (get_pairs(0, &p, &n) == 0) set_pairs(0, p, n);
        if (get_header(0, ":path", 5, &p, &n) == 0) proxy_log(2, p, n);
        if (get_header(0, "x-missing", 9, &p, &n) == 1) say("x-missing not found");
    } else if (same(mode, "deny")) {
        send_local(401, "denied", 6, "no", 2, deny_headers, (int32_t)sizeof deny_headers - 1, -1);
        return 1;
    } else if (same(mode, "http")) {
        int32_t id = 0;
        http_call("upstream", 8, "", 0, "", 0, "", 0, 1000, &id);
    } else if (same(mode, "flood")) {
        static char big[65536];
        char key[2] = {'a', 0};
        for (;;) {
            set_shared(key, 1, big, (int32_t)sizeof big, 0);
            key[0]++;
        }
    }
    return 0;
}

EXPORT(proxy_on_request_body) int32_t on_request_body(int32_t ctx, int32_t size, int32_t eos) {
    say_num("request_body", size, eos);
    return 0;
}

EXPORT(proxy_on_response_headers) int32_t on_response_headers(int32_t ctx, int32_t count, int32_t eos) {
    say_num("response_headers", count, eos);
    return 0;
}

EXPORT(proxy_on_response_body) int32_t on_response_body(int32_t ctx, int32_t size, int32_t eos) {
    say_num("response_body", size, eos);
    if (same(mode, "headers")) set_buffer(1, 0, size, "changed", 7);
    if (same(mode, "edit")) {
        /* the SDKs' edits: prepend (start 0, size 0), append (start past the end: Go's MaxInt32,
           or a u32 that reads negative as i32), and a middle slice replaced */
        set_buffer(1, 0, 0, "<", 1);
        set_buffer(1, 0x7fffffff, 0, ">", 1);
        set_buffer(1, -1, 0, "!", 1);
        set_buffer(1, 2, 1, "i", 1);
    }
    return 0;
}

EXPORT(proxy_on_done) int32_t on_done(int32_t ctx) { say_num("done", ctx, 0); return 1; }
EXPORT(proxy_on_log) void on_log(int32_t ctx) { say_num("log", ctx, 0); }
EXPORT(proxy_on_delete) void on_delete(int32_t ctx) { say_num("delete", ctx, 0); }
