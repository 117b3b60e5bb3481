/*
 * vec: the doubling realloc of an owner-held array (see vec.h). Any
 * thread; no state.
 */
#include "core/vec.h"

#include <stdlib.h>

void *vec_grow(void *v, uint32_t *cap, size_t elem, uint32_t first)
{
    if (*cap > UINT32_MAX / 2 || elem == 0)
        return NULL;
    uint32_t n = *cap ? *cap * 2 : (first ? first : 1);
    if ((size_t)n > SIZE_MAX / elem)
        return NULL;
    void *nv = realloc(v, (size_t)n * elem);
    if (!nv)
        return NULL;
    *cap = n;
    return nv;
}
