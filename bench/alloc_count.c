// LD_PRELOAD shim for bench/run.py: counts heap allocations of the process under test.
// Every malloc, calloc, realloc, memalign-family call and hence every C++ operator new (which
// libstdc++ implements with malloc) increments a counter kept in a file mapped shared
// (ALLOC_COUNT_FILE), so the benchmark reads it at any moment without stopping the process.
// The calls are forwarded to glibc's own entry points (__libc_malloc, ...), so no dlsym and no
// recursion. Bench-only: never linked into the product.
//   cc -O2 -shared -fPIC -o alloc_count.so bench/alloc_count.c
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);

static uint64_t fallback;
static uint64_t* counter = &fallback;

__attribute__((constructor)) static void alloc_count_init(void) {
    const char* path = getenv("ALLOC_COUNT_FILE");
    if (path == NULL) {
        return;
    }
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, sizeof(uint64_t)) != 0) {
        return;
    }
    void* p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) {
        counter = (uint64_t*)p;
        __atomic_store_n(counter, fallback, __ATOMIC_RELAXED);
    }
}

static inline void count(void) { __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

void* malloc(size_t n) {
    count();
    return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
    count();
    return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
    count();
    return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
    count();
    return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
    count();
    return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
    count();
    void* p = __libc_memalign(a, n);
    if (p == NULL) {
        return 12;  // ENOMEM
    }
    *out = p;
    return 0;
}
