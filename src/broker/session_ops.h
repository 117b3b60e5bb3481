/*
 * session_ops: what the broker gives the session room (session.h, struct
 * session_ops): every shard's s->session_ops points here, set as the
 * shard starts (serve.c) and before it serves a client.
 */
#ifndef RINGMQ_BROKER_SESSION_OPS_H
#define RINGMQ_BROKER_SESSION_OPS_H

struct session_ops;

extern const struct session_ops broker_session_ops;

#endif
