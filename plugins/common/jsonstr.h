/*
 * JSON string values from bytes, for the shipped plugins that write JSON with
 * jansson (compiled into each plugin that uses it; not part of the ABI).
 * jansson takes only valid UTF-8; MQTT passwords are binary and client ids
 * or topics in an events log may be anything a client sent, so these map
 * bytes that are not text to the code point of their value (U+0000..U+00FF,
 * as Latin-1 would), which every JSON reader decodes the same way.
 */
#ifndef RINGMQ_PLUGIN_JSONSTR_H
#define RINGMQ_PLUGIN_JSONSTR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A new JSON string of n code points: byte i becomes U+00XX with XX its
 * value (NUL included). Returns a new reference, or NULL when out of
 * memory. */
json_t *jsonstr_latin1(const uint8_t *p, size_t n);

/* A new JSON string of the n bytes at p: valid UTF-8 sequences (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF) are kept, every other
 * byte becomes U+00XX with XX its value. Returns a new reference, or NULL
 * when out of memory. */
json_t *jsonstr_utf8_or_latin1(const uint8_t *p, size_t n);

/* jsonstr_utf8_or_latin1 of the C string s, or JSON null when s is NULL. */
json_t *jsonstr_cstr_or_null(const char *s);

#endif
