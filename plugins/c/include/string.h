/* Freestanding stand-in for <string.h>. Implemented in ../runtime/runtime.c. */
#ifndef TALLY_C_STRING_H
#define TALLY_C_STRING_H
#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
