/* Tally bot filter in C: the same rules as the Rust reference,
 * plugins/bot-filter/src/rules.rs, verdict for verdict on any input.
 *
 *   1  the User-Agent names a bot: it contains one of AGENT_WORDS, ASCII
 *      case-insensitively;
 *   2  the IP is an IPv4 address inside one of NETWORKS (documentation
 *      ranges);
 *   0  otherwise (keep).
 *
 * Faithful to the reference's edge cases:
 * - the Rust SDK reads a field as "" when its bytes are not valid UTF-8, so
 *   a User-Agent only counts when it is valid UTF-8 (the IP needs no such
 *   check: any non-ASCII byte already fails the parse);
 * - IPv4 is parsed like `parse_v4`: exactly four '.'-separated fields, each
 *   what Rust's `u8::from_str` accepts: an optional '+', then one or more
 *   ASCII digits (leading zeros allowed) with a value of at most 255;
 * - a batch whose string offsets are out of range, decreasing, or fewer
 *   than its clicks makes the Rust guest panic; here it traps the same way.
 *
 * No enrichment: the tag lists are empty. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "filter.h"

enum { KEEP = 0, BOT_USER_AGENT = 1, BLOCKED_NETWORK = 2 };

/* (network, prefix length) of IPv4 ranges no human clicks from. */
static const struct {
  uint8_t net[4];
  uint8_t len;
} NETWORKS[] = {
    {{192, 0, 2, 0}, 24},
    {{198, 51, 100, 0}, 24},
    {{203, 0, 113, 0}, 24},
};

static inline uint8_t ascii_lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

/* `word` (lower case ASCII) at s[at..], ignoring ASCII case. */
static bool word_at(const uint8_t *s, size_t n, size_t at, const char *word, size_t len) {
  if (len > n - at) return false;
  for (size_t k = 0; k < len; k++)
    if (ascii_lower(s[at + k]) != (uint8_t)word[k]) return false;
  return true;
}

/* AGENT_WORDS = bot, crawler, spider, headless, curl/, python-requests:
 * one pass, dispatching on the first letter. */
static bool names_a_bot(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    switch (ascii_lower(s[i])) {
    case 'b':
      if (word_at(s, n, i, "bot", 3)) return true;
      break;
    case 'c':
      if (word_at(s, n, i, "crawler", 7) || word_at(s, n, i, "curl/", 5)) return true;
      break;
    case 's':
      if (word_at(s, n, i, "spider", 6)) return true;
      break;
    case 'h':
      if (word_at(s, n, i, "headless", 8)) return true;
      break;
    case 'p':
      if (word_at(s, n, i, "python-requests", 15)) return true;
      break;
    default:
      break;
    }
  }
  return false;
}

/* Well-formed UTF-8 exactly as Rust's `str::from_utf8` accepts it: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static bool valid_utf8(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t more;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
      more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      more = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      more = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (more > n - i - 1) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k <= more; k++)
      if ((s[i + k] & 0xC0) != 0x80) return false;
    i += more + 1;
  }
  return true;
}

/* Like the reference's parse_v4. */
static bool parse_v4(const uint8_t *s, size_t n, uint32_t *out) {
  uint32_t addr = 0;
  size_t i = 0;
  for (int field = 0; field < 4; field++) {
    if (field > 0) {
      if (i == n) return false; /* fewer than four fields */
      i++;                      /* the '.' that ended the previous field */
    }
    if (i < n && s[i] == '+') i++;
    size_t digits = i;
    uint32_t v = 0;
    for (; i < n && s[i] != '.'; i++) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (uint32_t)(s[i] - '0');
      if (v > 255) return false;
    }
    if (i == digits) return false; /* empty field, or a lone '+' */
    addr = addr << 8 | v;
  }
  if (i != n) return false; /* a fifth field, even an empty one */
  *out = addr;
  return true;
}

uint16_t bot_filter_verdict(const uint8_t *ua, size_t ua_len, const uint8_t *ip, size_t ip_len) {
  if (names_a_bot(ua, ua_len) && valid_utf8(ua, ua_len)) return BOT_USER_AGENT;
  uint32_t addr;
  if (parse_v4(ip, ip_len, &addr)) {
    for (size_t k = 0; k < sizeof NETWORKS / sizeof NETWORKS[0]; k++) {
      uint32_t len = NETWORKS[k].len;
      uint32_t mask = len == 0 ? 0 : UINT32_MAX << (32 - len);
      uint32_t net = (uint32_t)NETWORKS[k].net[0] << 24 | (uint32_t)NETWORKS[k].net[1] << 16 |
                     (uint32_t)NETWORKS[k].net[2] << 8 | NETWORKS[k].net[3];
      if ((addr & mask) == (net & mask)) return BLOCKED_NETWORK;
    }
  }
  return KEEP;
}

/* String i of a column; traps where the Rust SDK's slicing would panic. */
static void string_at(const tally_filter_types_strings_t *s, size_t i, const uint8_t **ptr, size_t *len) {
  if (i >= s->ends.len) abort();
  size_t start = i == 0 ? 0 : s->ends.ptr[i - 1];
  size_t end = s->ends.ptr[i];
  if (start > end || end > s->bytes.len) abort();
  *ptr = s->bytes.ptr + start;
  *len = end - start;
}

void exports_filter_filter(filter_click_batch_t *batch, filter_verdicts_t *ret) {
  size_t n = batch->ad_id.len; /* the number of clicks */
  uint16_t *codes = NULL;
  if (n > 0) {
    codes = malloc(n * sizeof *codes);
    if (codes == NULL) abort();
  }
  for (size_t i = 0; i < n; i++) {
    const uint8_t *ua, *ip;
    size_t ua_len, ip_len;
    string_at(&batch->user_agent, i, &ua, &ua_len);
    string_at(&batch->ip, i, &ip, &ip_len);
    codes[i] = bot_filter_verdict(ua, ua_len, ip, ip_len);
  }
  /* The batch is ours (the export passes ownership): give it back. */
  filter_click_batch_free(batch);
  /* Verdicts are freed by the generated post-return function; the empty
   * tag lists are NULL with length 0 (freed only when non-empty). */
  *ret = (filter_verdicts_t){.codes = {.ptr = codes, .len = n}};
}
