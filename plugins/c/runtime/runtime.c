/* The few libc functions a Tally C filter needs, for a freestanding
 * wasm32 build: no libc, no WASI imports, so the component imports nothing
 * and needs no WASI adapter.
 *
 * Allocator: a bump arena with a count of live blocks. The canonical ABI
 * allocates a batch through cabi_realloc (-> realloc), the filter frees it
 * (the generated *_free functions) and allocates its verdicts, and the
 * generated post-return function frees those: after every call the count is
 * back to zero and the whole arena is reused from its start, so a long-lived
 * instance does not grow. Freeing the most recent block also gives it back
 * at once, and realloc of the most recent block grows it in place (the
 * common case for a host building a list). Blocks freed out of order are
 * reclaimed when the count reaches zero. Memory is grown with memory.grow;
 * when that fails, malloc returns NULL (cabi_realloc then traps, and the
 * host rebuilds the instance). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SIZE 65536u
#define ALIGN 16u /* like malloc: enough for any scalar, u64 lists included */
#define LIVE_MAGIC 0x7a11c0deu
#define MAX_BLOCK 0x7fff0000u /* no single block over ~2 GiB */

typedef struct {
  uint32_t size; /* bytes asked for */
  uint32_t magic; /* LIVE_MAGIC while allocated */
  uint32_t pad[2]; /* keeps the payload 16-aligned */
} header_t;

extern unsigned char __heap_base; /* set by wasm-ld: end of data and stack */

static uintptr_t heap_start; /* first header; 0 until first use */
static uintptr_t top;        /* end of the last block */
static uintptr_t last;       /* payload of the most recent block, or 0 */
static size_t live;          /* blocks allocated and not freed */

static uint64_t round_up(uint64_t x) { return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1); }

/* Makes linear memory at least `end` bytes long. */
static int reserve(uint64_t end) {
  if (end >= ((uint64_t)1 << 32)) return 0;
  uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * PAGE_SIZE;
  if (end <= have) return 1;
  uint64_t pages = (end - have + PAGE_SIZE - 1) / PAGE_SIZE;
  return __builtin_wasm_memory_grow(0, (size_t)pages) != (size_t)-1;
}

static header_t *header_of(void *ptr) {
  uintptr_t p = (uintptr_t)ptr;
  if (heap_start == 0 || p < heap_start + sizeof(header_t) || p >= top || (p & (ALIGN - 1)) != 0)
    return NULL;
  header_t *h = (header_t *)(p - sizeof(header_t));
  return h->magic == LIVE_MAGIC ? h : NULL;
}

void *malloc(size_t size) {
  if (heap_start == 0) heap_start = top = (uintptr_t)round_up((uintptr_t)&__heap_base);
  if (size > MAX_BLOCK) return NULL;
  uint64_t payload = (uint64_t)top + sizeof(header_t);
  uint64_t end = payload + round_up(size);
  if (!reserve(end)) return NULL;
  header_t *h = (header_t *)top;
  h->size = (uint32_t)size;
  h->magic = LIVE_MAGIC;
  top = (uintptr_t)end;
  last = (uintptr_t)payload;
  live++;
  return (void *)last;
}

void free(void *ptr) {
  header_t *h = header_of(ptr); /* NULL, foreign or already freed: ignored */
  if (h == NULL) return;
  h->magic = 0;
  live--;
  if (live == 0) {
    top = heap_start;
    last = 0;
  } else if ((uintptr_t)ptr == last) {
    top = (uintptr_t)h;
    last = 0;
  }
}

void *realloc(void *ptr, size_t size) {
  if (ptr == NULL) return malloc(size);
  header_t *h = header_of(ptr);
  if (h == NULL || size > MAX_BLOCK) return NULL;
  if ((uintptr_t)ptr == last) { /* the most recent block: resize in place */
    uint64_t end = (uint64_t)(uintptr_t)ptr + round_up(size);
    if (!reserve(end)) return NULL;
    h->size = (uint32_t)size;
    top = (uintptr_t)end;
    return ptr;
  }
  if (size <= h->size) {
    h->size = (uint32_t)size;
    return ptr;
  }
  void *moved = malloc(size);
  if (moved == NULL) return NULL;
  memcpy(moved, ptr, h->size);
  free(ptr);
  return moved;
}

void *calloc(size_t count, size_t size) {
  if (size != 0 && count > MAX_BLOCK / size) return NULL;
  void *ptr = malloc(count * size);
  if (ptr != NULL) memset(ptr, 0, count * size);
  return ptr;
}

_Noreturn void abort(void) { __builtin_trap(); }

/* Plain loops; -ffreestanding (which implies -fno-builtin) keeps the
 * compiler from turning them back into calls to themselves. */
void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else if (d > s) {
    while (n--) d[n] = s[n];
  }
  return dst;
}

void *memset(void *dst, int c, size_t n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x < *y ? -1 : 1;
  return 0;
}

size_t strlen(const char *s) {
  const char *p = s;
  while (*p) p++;
  return (size_t)(p - s);
}
