/*
 * JSON string values from bytes (see jsonstr.h). Pure functions on the
 * caller's thread; the only allocations are jansson's and one scratch copy
 * when bytes must be re-encoded.
 */
#include "jsonstr.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (RFC 3629), or 0 when it is not
 * one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Appends the UTF-8 encoding of U+00XX, XX = b, at out; returns its length. */
static size_t put_latin1(char *out, uint8_t b)
{
    if (b < 0x80) {
        out[0] = (char)b;
        return 1;
    }
    out[0] = (char)(0xc0 | (b >> 6));
    out[1] = (char)(0x80 | (b & 0x3f));
    return 2;
}

/* Re-encodes p: each byte as U+00XX, except (when keep_utf8) valid UTF-8
 * sequences, which are copied. Every byte grows to two at most. */
static json_t *reencode(const uint8_t *p, size_t n, bool keep_utf8)
{
    char *tmp = malloc(2 * n + 1);
    if (!tmp)
        return NULL;
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        size_t l = keep_utf8 ? utf8_seq(p + i, n - i) : 1;
        if (l > 1) {
            memcpy(tmp + len, p + i, l);
            len += l;
            i += l;
        } else {
            len += put_latin1(tmp + len, p[i]);
            i++;
        }
    }
    json_t *s = json_stringn(tmp, len);
    free(tmp);
    return s;
}

json_t *jsonstr_latin1(const uint8_t *p, size_t n)
{
    return reencode(p, n, false);
}

json_t *jsonstr_utf8_or_latin1(const uint8_t *p, size_t n)
{
    /* Text is the common case: no copy when it is valid UTF-8 already. */
    size_t i = 0, l;
    while (i < n && (l = utf8_seq(p + i, n - i)) > 0)
        i += l;
    if (i == n)
        return json_stringn(n ? (const char *)p : "", n);
    return reencode(p, n, true);
}

json_t *jsonstr_cstr_or_null(const char *s)
{
    if (!s)
        return json_null();
    return jsonstr_utf8_or_latin1((const uint8_t *)s, strlen(s));
}
