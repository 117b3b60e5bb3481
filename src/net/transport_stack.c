/*
 * transport_stack: transports run one on another (see transport_stack.h).
 *
 * Owns, per stream, a few bytes of its own (struct stack_stream: whether a
 * layer above the lowest failed, whether the stream moved away) and, per
 * listener, the layers' contexts. Each hook runs the layers' hooks in
 * turn, with st->xprt_layer set to the layer running and set back after,
 * so that hooks may nest: the lowest layer's input hands bytes up
 * (stream_layer_deliver) to the next one's input, whose own hand-up
 * reaches the owner, which may call back into the stack (a flush, a move)
 * from there. Runs on the stream's loop's thread.
 */
#include "net/transport_stack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct stack_stream {
    int err;    /* a layer above the lowest failed (-errno): its input is over */
    bool moved; /* exported to another loop: nothing more leaves from here */
};

_Static_assert(sizeof(struct stack_stream) <= TRANSPORT_STACK_STATE, "TRANSPORT_STACK_STATE");

/* The listener's context: the layers first, as stream.h reads them. */
struct stack_listener {
    struct stream_layers layers;
    const struct transport_kind *kinds[STREAM_MAX_LAYERS];
};

static const struct stream_layers *layers_of(const struct stream_loop *l, const struct stream *st)
{
    return l->xprt_ctx[st->listener];
}

/* The stack's own state: the start of the stream's, whichever layer runs. */
static struct stack_stream *own(const struct stream_loop *l, const struct stream *st)
{
    return (struct stack_stream *)((char *)st + l->owner_size);
}

/* Layer i runs from now on; returns the layer that ran before, which the
 * caller sets back. */
static uint8_t enter(struct stream *st, unsigned i)
{
    uint8_t was = st->xprt_layer;
    st->xprt_layer = (uint8_t)(i + 1);
    return was;
}

/* Close layers [0, n) from the top down. */
static void close_layers(struct stream_loop *l, struct stream *st, unsigned n)
{
    const struct stream_layers *ls = layers_of(l, st);
    for (unsigned i = n; i-- > 0;) {
        if (!ls->ops[i]->close)
            continue;
        uint8_t was = enter(st, i);
        ls->ops[i]->close(l, st);
        st->xprt_layer = was;
    }
}

int transport_stack_open(struct stream_loop *l, struct stream *st)
{
    const struct stream_layers *ls = layers_of(l, st);
    memset(own(l, st), 0, sizeof(struct stack_stream));
    for (unsigned i = 0; i < ls->n; i++) {
        if (!ls->ops[i]->open)
            continue;
        uint8_t was = enter(st, i);
        int rc = ls->ops[i]->open(l, st);
        st->xprt_layer = was;
        if (rc < 0) {
            close_layers(l, st, i);
            return rc;
        }
    }
    return 0;
}

/* Bytes into layer i (an identity layer hands them straight up). */
static int layer_input(struct stream_loop *l, struct stream *st, unsigned i, const uint8_t *data,
                       size_t len)
{
    const struct transport_ops *x = layers_of(l, st)->ops[i];
    uint8_t was = enter(st, i);
    int rc = 0;
    if (x->input)
        rc = x->input(l, st, data, len);
    else if (data)
        stream_layer_deliver(l, st, data, len);
    st->xprt_layer = was;
    return rc;
}

void stream_layer_deliver(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len)
{
    const struct stream_layers *ls = layers_of(l, st);
    struct stack_stream *s = own(l, st);
    unsigned above = st->xprt_layer; /* the next layer's index: xprt_layer is i + 1 */
    if (above >= ls->n) {
        /* The top layer's bytes: the owner's, who sees no layer running
         * (it may flush or move the stream from here). */
        uint8_t was = st->xprt_layer;
        st->xprt_layer = 0;
        l->ev->on_bytes(l, st, data, len);
        st->xprt_layer = was;
        return;
    }
    /* Once a layer failed, or the stream left, what lies below is not
     * read further up: the layer below goes on, as its own input allows. */
    if (s->err || s->moved || st->shut)
        return;
    int rc = layer_input(l, st, above, data, len);
    if (rc < 0)
        s->err = rc;
}

/* A NULL input (stream_resume) goes to the lowest layer only: the layers
 * above hand up all they are given, so only the lowest keeps input. */
int transport_stack_input(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len)
{
    struct stack_stream *s = own(l, st);
    if (s->err)
        return s->err;
    int rc = layer_input(l, st, 0, data, len);
    return rc < 0 ? rc : s->err;
}

int transport_stack_seal(struct stream_loop *l, struct stream *st)
{
    const struct stream_layers *ls = layers_of(l, st);
    if (own(l, st)->moved) /* the layers' keys are elsewhere: never in clear */
        return st->out && st->out->len ? -EPIPE : 0;
    for (unsigned i = ls->n; i-- > 0;) {
        if (!ls->ops[i]->seal)
            continue;
        uint8_t was = enter(st, i);
        int rc = ls->ops[i]->seal(l, st);
        st->xprt_layer = was;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static size_t layer_export_size(const struct stream_loop *l, struct stream *st, unsigned i)
{
    const struct transport_ops *x = layers_of(l, st)->ops[i];
    if (!x->export_size)
        return 0;
    uint8_t was = enter(st, i);
    size_t n = x->export_size(l, st);
    st->xprt_layer = was;
    return n;
}

/* Each layer's state, lowest first, as [u32 length][state]. */
size_t transport_stack_export_size(const struct stream_loop *l, const struct stream *st)
{
    size_t n = 0;
    for (unsigned i = 0; i < layers_of(l, st)->n; i++)
        n += 4 + layer_export_size(l, (struct stream *)st, i);
    return n;
}

void transport_stack_export(const struct stream_loop *l, struct stream *st, uint8_t *to)
{
    const struct stream_layers *ls = layers_of(l, st);
    for (unsigned i = 0; i < ls->n; i++) {
        uint32_t n = (uint32_t)layer_export_size(l, st, i);
        memcpy(to, &n, 4);
        to += 4;
        if (n) {
            uint8_t was = enter(st, i);
            ls->ops[i]->export_state(l, st, to);
            st->xprt_layer = was;
            to += n;
        }
    }
    own(l, st)->moved = true;
}

int transport_stack_import(struct stream_loop *l, struct stream *st, const uint8_t *from,
                           size_t len)
{
    const struct stream_layers *ls = layers_of(l, st);
    const uint8_t *end = from + len;
    for (unsigned i = 0; i < ls->n; i++) {
        uint32_t n;
        if (end - from < 4)
            return -EINVAL;
        memcpy(&n, from, 4);
        from += 4;
        if ((size_t)(end - from) < n || (n && !ls->ops[i]->import_state))
            return -EINVAL;
        if (ls->ops[i]->import_state) {
            uint8_t was = enter(st, i);
            int rc = ls->ops[i]->import_state(l, st, from, n);
            st->xprt_layer = was;
            if (rc < 0)
                return rc;
        }
        from += n;
    }
    struct stack_stream *s = own(l, st);
    s->moved = false;
    s->err = 0;
    return from == end ? 0 : -EINVAL;
}

/* The lowest layer with an opening of its own (wss: the TLS handshake). */
uint32_t transport_stack_opening(const struct stream_loop *l, struct stream *st, bool *open)
{
    const struct stream_layers *ls = layers_of(l, st);
    for (unsigned i = 0; i < ls->n; i++) {
        if (!ls->ops[i]->opening)
            continue;
        uint8_t was = enter(st, i);
        uint32_t ms = ls->ops[i]->opening(l, st, open);
        st->xprt_layer = was;
        return ms;
    }
    *open = true;
    return 0;
}

/* What the lowest layer that knows something knows of the client. */
const struct xprt_info *transport_stack_info(const struct stream_loop *l, struct stream *st)
{
    const struct stream_layers *ls = layers_of(l, st);
    for (unsigned i = 0; i < ls->n; i++) {
        if (!ls->ops[i]->info)
            continue;
        uint8_t was = enter(st, i);
        const struct xprt_info *info = ls->ops[i]->info(l, st);
        st->xprt_layer = was;
        if (info)
            return info;
    }
    return NULL;
}

void transport_stack_close(struct stream_loop *l, struct stream *st)
{
    close_layers(l, st, layers_of(l, st)->n);
    memset(own(l, st), 0, sizeof(struct stack_stream));
}

/* ---- the listener ------------------------------------------------------- */

void transport_stack_listener_destroy(void *ctx)
{
    struct stack_listener *sl = ctx;
    for (unsigned i = sl->layers.n; i-- > 0;)
        if (sl->kinds[i]->listener_destroy && sl->layers.ctx[i])
            sl->kinds[i]->listener_destroy(sl->layers.ctx[i]);
    free(sl);
}

int transport_stack_listener_create(const struct transport_kind *const *kinds, unsigned n,
                                    size_t state_size, const struct config_listener *cl, void **ctx,
                                    struct transport_fail *fail)
{
    size_t off = TRANSPORT_STACK_STATE;
    for (unsigned i = 0; i < n; i++)
        off += (kinds[i]->ops->state_size + 7) & ~(size_t)7;
    if (n > STREAM_MAX_LAYERS || off > state_size) {
        log_err("[listener.%s] its transport's %u layers need %zu bytes per stream, it has %zu",
                cl->name, n, off, state_size);
        transport_fail_set(fail, "transport", NULL, "its layers need more bytes per stream");
        return -EINVAL;
    }
    struct stack_listener *sl = calloc(1, sizeof(*sl));
    if (!sl) {
        log_err("[listener.%s] out of memory", cl->name);
        transport_fail_set(fail, "transport", NULL, "out of memory");
        return -ENOMEM;
    }
    off = TRANSPORT_STACK_STATE;
    for (unsigned i = 0; i < n; i++) {
        sl->kinds[i] = kinds[i];
        sl->layers.ops[i] = kinds[i]->ops;
        sl->layers.off[i] = (uint32_t)off;
        off += (kinds[i]->ops->state_size + 7) & ~(size_t)7;
        int rc =
            kinds[i]->listener_create ? kinds[i]->listener_create(cl, &sl->layers.ctx[i], fail) : 0;
        if (rc < 0) {
            transport_stack_listener_destroy(sl); /* the layers made so far */
            return rc;
        }
        sl->layers.n = (uint8_t)(i + 1);
    }
    *ctx = sl;
    return 0;
}

int transport_stack_listener_sni(void *ctx, const struct config *cfg, uint32_t li,
                                 struct transport_fail *fail)
{
    struct stack_listener *sl = ctx;
    for (unsigned i = 0; i < sl->layers.n; i++) {
        int rc = sl->kinds[i]->listener_sni
                     ? sl->kinds[i]->listener_sni(sl->layers.ctx[i], cfg, li, fail)
                     : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Layer i's second step (none: no-op). */
static void layer_commit(struct stack_listener *sl, unsigned i, bool serve)
{
    if (sl->kinds[i]->listener_commit)
        sl->kinds[i]->listener_commit(sl->layers.ctx[i], serve);
}

/* All layers or none: one that fails drops what the layers below it read. */
int transport_stack_listener_prepare(void *ctx, const struct config *cfg, uint32_t li,
                                     struct transport_fail *fail)
{
    struct stack_listener *sl = ctx;
    for (unsigned i = 0; i < sl->layers.n; i++) {
        int rc = sl->kinds[i]->listener_prepare
                     ? sl->kinds[i]->listener_prepare(sl->layers.ctx[i], cfg, li, fail)
                     : 0;
        if (rc < 0) {
            while (i-- > 0)
                layer_commit(sl, i, false);
            return rc;
        }
    }
    return 0;
}

void transport_stack_listener_commit(void *ctx, bool serve)
{
    struct stack_listener *sl = ctx;
    for (unsigned i = 0; i < sl->layers.n; i++)
        layer_commit(sl, i, serve);
}
