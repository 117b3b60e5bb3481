/*
 * transport_stack: a transport made of others, each running on the one
 * below it: `wss` is `ws` on `tls`. The layers are the transports as they
 * are (each its own file, its own state, its own listener context), put
 * one on another here rather than written again for every combination.
 *
 * How a layer is run without knowing it is stacked (stream.h, "Stacked
 * transports"): the stack's listener context is a struct stream_layers;
 * while a layer's hook runs, st->xprt_layer names it, and stream_state,
 * stream_xprt_ctx and stream_deliver give it its own state and context
 * and take what it hands up to the layer above (the owner, from the top).
 * Input enters at the lowest layer; at the flush each layer seals st->out
 * in turn from the top down (WebSocket frames, then TLS records). The
 * state that moves with a stream to another shard is each layer's, one
 * after the other.
 *
 * A stacked transport's table (wss.c) names the hooks below, its name, and
 * its state size: TRANSPORT_STACK_STATE plus each layer's at most (8-byte
 * aligned); its kind's listener hooks call the transport_stack_listener_*
 * ones with its layers' kinds.
 *
 * Runs on the thread of the stream's loop; listener contexts are made and
 * freed on the main thread while no shard runs.
 */
#ifndef RINGMQ_NET_TRANSPORT_STACK_H
#define RINGMQ_NET_TRANSPORT_STACK_H

#include "net/transport.h"

/* The stack's own per-stream bytes, before its layers'. */
#define TRANSPORT_STACK_STATE 8u

/* struct transport_ops hooks of a stack (see stream.h for each). */
int transport_stack_open(struct stream_loop *l, struct stream *st);
int transport_stack_input(struct stream_loop *l, struct stream *st, const uint8_t *data,
                          size_t len);
int transport_stack_seal(struct stream_loop *l, struct stream *st);
size_t transport_stack_export_size(const struct stream_loop *l, const struct stream *st);
void transport_stack_export(const struct stream_loop *l, struct stream *st, uint8_t *to);
int transport_stack_import(struct stream_loop *l, struct stream *st, const uint8_t *from,
                           size_t len);
uint32_t transport_stack_opening(const struct stream_loop *l, struct stream *st, bool *open);
const struct xprt_info *transport_stack_info(const struct stream_loop *l, struct stream *st);
void transport_stack_close(struct stream_loop *l, struct stream *st);

/* A stack's listener context: each of the n kinds' (lowest first, n <=
 * STREAM_MAX_LAYERS) made from the same configuration, in *ctx. The
 * layers' states must fit in state_size (the stack table's). 0, or
 * -errno having logged why. */
int transport_stack_listener_create(const struct transport_kind *const *kinds, unsigned n,
                                    size_t state_size, const struct config_listener *cl, void **ctx,
                                    struct transport_fail *fail);

/* Each layer's certificates by server name, reload (prepare: every layer
 * or none; commit) and destroy (the struct transport_kind hooks, for the
 * layers that have them). */
int transport_stack_listener_sni(void *ctx, const struct config *cfg, uint32_t li,
                                 struct transport_fail *fail);
int transport_stack_listener_prepare(void *ctx, const struct config *cfg, uint32_t li,
                                     struct transport_fail *fail);
void transport_stack_listener_commit(void *ctx, bool serve);
void transport_stack_listener_destroy(void *ctx);

#endif
