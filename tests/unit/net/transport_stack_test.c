/* net/transport_stack: two toy layers run as a stack through its hooks,
 * without a ring: each layer finds its own state and context, input goes
 * up from the lowest layer to the owner (who sees no layer running), seal
 * runs from the top down, an upper layer's error ends the input, and the
 * state moves as each layer's in turn (after which nothing is sealed).
 * A reload's files: every layer prepares or none keeps what it read. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/transport_stack.h"

/* The owner: the stream first, the stack's state after it. */
struct owner {
    struct stream st;
    uint8_t got[64];
    size_t ngot;
    int on_bytes_layer; /* st.xprt_layer seen by on_bytes */
};

struct toy_state {
    uint32_t seen; /* bytes this layer was given */
};

static struct stream_loop loop;
static struct owner *own;

static void on_bytes(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    (void)l;
    struct owner *o = (struct owner *)st;
    o->on_bytes_layer = st->xprt_layer;
    cr_assert_leq(o->ngot + n, sizeof(o->got));
    memcpy(o->got + o->ngot, d, n);
    o->ngot += n;
}

static const struct stream_events events = {.on_bytes = on_bytes};

static struct toy_state *toy_of(struct stream_loop *l, struct stream *st)
{
    return stream_state(l, st);
}

/* Each layer's listener context is its name: "low" or "high". */
static void expect_ctx(struct stream_loop *l, struct stream *st, const char *name)
{
    cr_assert_str_eq(stream_xprt_ctx(l, st), name);
}

static int toy_open(struct stream_loop *l, struct stream *st)
{
    toy_of(l, st)->seen = 0;
    return 0;
}

/* low: hands up each byte in upper case; '#' it drops. */
static int low_input(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    expect_ctx(l, st, "low");
    toy_of(l, st)->seen += (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = d[i] >= 'a' && d[i] <= 'z' ? (uint8_t)(d[i] - 32) : d[i];
        if (c != '#')
            stream_deliver(l, st, &c, 1);
    }
    return 0;
}

/* high: hands up what it is given; '!' is an error of its protocol. */
static int high_input(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    expect_ctx(l, st, "high");
    toy_of(l, st)->seen += (uint32_t)n;
    if (memchr(d, '!', n))
        return -EPROTO;
    stream_deliver(l, st, d, n);
    return 0;
}

/* Each seal wraps st->out: high in (), then low in []. */
static int wrap(struct stream *st, char open, char close)
{
    struct iobuf *b = st->out;
    struct iobuf *nb = iobuf_create(b->len + 2);
    nb->data[0] = (uint8_t)open;
    memcpy(nb->data + 1, b->data, b->len);
    nb->data[b->len + 1] = (uint8_t)close;
    nb->len = b->len + 2;
    free(b);
    st->out = nb;
    return 0;
}

static int low_seal(struct stream_loop *l, struct stream *st)
{
    expect_ctx(l, st, "low");
    return wrap(st, '[', ']');
}

static int high_seal(struct stream_loop *l, struct stream *st)
{
    expect_ctx(l, st, "high");
    return wrap(st, '(', ')');
}

static size_t toy_export_size(const struct stream_loop *l, const struct stream *st)
{
    (void)l, (void)st;
    return sizeof(struct toy_state);
}

static void toy_export(const struct stream_loop *l, struct stream *st, uint8_t *to)
{
    memcpy(to, toy_of((struct stream_loop *)l, st), sizeof(struct toy_state));
}

static int toy_import(struct stream_loop *l, struct stream *st, const uint8_t *from, size_t n)
{
    if (n != sizeof(struct toy_state))
        return -EINVAL;
    memcpy(toy_of(l, st), from, n);
    return 0;
}

static const struct transport_ops low = {
    .name = "low",
    .state_size = sizeof(struct toy_state),
    .open = toy_open,
    .input = low_input,
    .seal = low_seal,
    .export_size = toy_export_size,
    .export_state = toy_export,
    .import_state = toy_import,
};

static const struct transport_ops high = {
    .name = "high",
    .state_size = sizeof(struct toy_state),
    .open = toy_open,
    .input = high_input,
    .seal = high_seal,
    .export_size = toy_export_size,
    .export_state = toy_export,
    .import_state = toy_import,
};

static const struct transport_ops stack = {
    .name = "stack",
    .state_size = TRANSPORT_STACK_STATE + 16,
    .open = transport_stack_open,
    .input = transport_stack_input,
    .seal = transport_stack_seal,
    .export_size = transport_stack_export_size,
    .export_state = transport_stack_export,
    .import_state = transport_stack_import,
    .close = transport_stack_close,
};

static struct stream_layers layers = {
    .ops = {&low, &high},
    .ctx = {"low", "high"},
    .off = {TRANSPORT_STACK_STATE, TRANSPORT_STACK_STATE + 8},
    .n = 2,
};

static struct owner *owner_open(void)
{
    struct owner *o = calloc(1, sizeof(struct owner) + stack.state_size);
    cr_assert_eq(stream_open(&loop, &o->st, 0, 0, NULL), 0);
    return o;
}

static void setup(void)
{
    memset(&loop, 0, sizeof(loop));
    loop.ev = &events;
    loop.owner_size = sizeof(struct owner);
    loop.xprt[0] = &stack;
    loop.xprt_ctx[0] = &layers;
    own = owner_open();
}

static void fini(void)
{
    stream_release(&loop, &own->st);
    free(own);
}

static struct toy_state *layer_state(struct owner *o, unsigned i)
{
    return (struct toy_state *)((char *)o + sizeof(struct owner) + layers.off[i]);
}

Test(transport_stack, input_goes_up_through_each_layer_to_the_owner, .init = setup, .fini = fini)
{
    const char in[] = "ab#c";
    cr_assert_eq(transport_stack_input(&loop, &own->st, (const uint8_t *)in, 4), 0);
    cr_assert_eq(own->ngot, 3);
    cr_assert_arr_eq(own->got, "ABC", 3);
    cr_assert_eq(own->on_bytes_layer, 0, "the owner runs outside the layers");
    cr_assert_eq(own->st.xprt_layer, 0);
    cr_assert_eq(layer_state(own, 0)->seen, 4); /* each its own state */
    cr_assert_eq(layer_state(own, 1)->seen, 3);
}

Test(transport_stack, an_upper_layer_error_ends_the_input, .init = setup, .fini = fini)
{
    const char in[] = "a!b";
    cr_assert_eq(transport_stack_input(&loop, &own->st, (const uint8_t *)in, 3), -EPROTO);
    cr_assert_eq(own->ngot, 1, "what came before the error is the owner's");
    cr_assert_eq(layer_state(own, 1)->seen, 2, "nothing handed up after the error");
    cr_assert_eq(transport_stack_input(&loop, &own->st, (const uint8_t *)"c", 1), -EPROTO);
    cr_assert_eq(layer_state(own, 0)->seen, 3, "nor read at all");
}

Test(transport_stack, seal_runs_from_the_top_down, .init = setup, .fini = fini)
{
    own->st.out = iobuf_create(16);
    memcpy(own->st.out->data, "mqtt", 4);
    own->st.out->len = 4;
    cr_assert_eq(transport_stack_seal(&loop, &own->st), 0);
    cr_assert_eq(own->st.out->len, 8);
    cr_assert_arr_eq(own->st.out->data, "[(mqtt)]", 8);
    cr_assert_eq(own->st.xprt_layer, 0);
}

Test(transport_stack, state_moves_layer_by_layer_and_nothing_is_sealed_after, .init = setup,
     .fini = fini)
{
    cr_assert_eq(transport_stack_input(&loop, &own->st, (const uint8_t *)"ab#", 3), 0);
    size_t n = transport_stack_export_size(&loop, &own->st);
    cr_assert_eq(n, 2 * (4 + sizeof(struct toy_state)));
    uint8_t blob[64];
    transport_stack_export(&loop, &own->st, blob);
    own->st.out = iobuf_create(16);
    own->st.out->len = 1;
    cr_assert_eq(transport_stack_seal(&loop, &own->st), -EPIPE, "never in clear once moved");

    struct owner *home = owner_open();
    cr_assert_eq(transport_stack_import(&loop, &home->st, blob, n), 0);
    cr_assert_eq(layer_state(home, 0)->seen, 3);
    cr_assert_eq(layer_state(home, 1)->seen, 2);
    cr_assert_eq(transport_stack_import(&loop, &home->st, blob, n - 1), -EINVAL);
    stream_release(&loop, &home->st);
    free(home);
}

/* ---- the listener: a reload's two steps ------------------------------------------------- */

static int layer_id[2] = {0, 1};
static int prepared[2], served[2], dropped[2];
static int fail_layer = -1;

static int low_listener(const struct config_listener *cl, void **ctx, struct transport_fail *f)
{
    (void)cl;
    (void)f;
    *ctx = &layer_id[0];
    return 0;
}

static int high_listener(const struct config_listener *cl, void **ctx, struct transport_fail *f)
{
    (void)cl;
    (void)f;
    *ctx = &layer_id[1];
    return 0;
}

static int toy_prepare(void *ctx, const struct config *cfg, uint32_t li,
                       struct transport_fail *fail)
{
    (void)cfg;
    (void)li;
    int i = *(int *)ctx;
    if (i == fail_layer) {
        transport_fail_set(fail, "tls_cert", "/etc/x.crt", "not a PEM certificate chain");
        return -EINVAL;
    }
    prepared[i]++;
    return 0;
}

static void toy_commit(void *ctx, bool serve)
{
    int i = *(int *)ctx;
    (serve ? served : dropped)[i]++;
}

static const struct transport_kind low_kind = {.ops = &low,
                                               .listener_create = low_listener,
                                               .listener_prepare = toy_prepare,
                                               .listener_commit = toy_commit};
static const struct transport_kind high_kind = {.ops = &high,
                                                .listener_create = high_listener,
                                                .listener_prepare = toy_prepare,
                                                .listener_commit = toy_commit};

static void *stack_listener(void)
{
    static const struct transport_kind *const kinds[] = {&low_kind, &high_kind};
    struct config_listener cl = {.name = "s"};
    void *ctx = NULL;
    struct transport_fail f;
    cr_assert_eq(transport_stack_listener_create(kinds, 2, 256, &cl, &ctx, &f), 0);
    memset(prepared, 0, sizeof(prepared));
    memset(served, 0, sizeof(served));
    memset(dropped, 0, sizeof(dropped));
    return ctx;
}

Test(transport_stack, a_layer_that_fails_to_prepare_drops_what_those_below_read)
{
    static struct config cfg;
    void *ctx = stack_listener();
    struct transport_fail f = {0};
    fail_layer = 1;
    cr_assert_eq(transport_stack_listener_prepare(ctx, &cfg, 0, &f), -EINVAL);
    cr_assert_eq(prepared[0], 1);
    cr_assert_eq(dropped[0], 1, "the lower layer's files are dropped");
    cr_assert_eq(served[0] + served[1] + dropped[1], 0);
    cr_assert_str_eq(f.file, "/etc/x.crt");
    cr_assert_str_eq(f.key, "tls_cert");
    fail_layer = -1;
    transport_stack_listener_destroy(ctx);
}

Test(transport_stack, every_layer_prepares_then_serves_or_drops)
{
    static struct config cfg;
    void *ctx = stack_listener();
    struct transport_fail f = {0};
    cr_assert_eq(transport_stack_listener_prepare(ctx, &cfg, 0, &f), 0);
    cr_assert(prepared[0] == 1 && prepared[1] == 1);
    transport_stack_listener_commit(ctx, true);
    cr_assert(served[0] == 1 && served[1] == 1 && dropped[0] + dropped[1] == 0);
    cr_assert_eq(transport_stack_listener_prepare(ctx, &cfg, 0, &f), 0);
    transport_stack_listener_commit(ctx, false);
    cr_assert(dropped[0] == 1 && dropped[1] == 1 && served[0] == 1);
    transport_stack_listener_destroy(ctx);
}
