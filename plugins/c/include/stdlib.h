/* Freestanding stand-in for <stdlib.h>: just what wit-bindgen's C bindings
 * and the plugins use. Implemented in ../runtime/runtime.c; no libc, no
 * WASI imports. */
#ifndef TALLY_C_STDLIB_H
#define TALLY_C_STDLIB_H
#include <stddef.h>

void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);
_Noreturn void abort(void);

#endif
