/*
 * notify: tell a service manager how the process stands (the sd_notify
 * protocol of systemd, spoken directly: one datagram to the socket named
 * by $NOTIFY_SOCKET, no library). Without $NOTIFY_SOCKET nothing happens,
 * so the calls cost nothing outside a Type=notify unit.
 */
#ifndef RINGMQ_CORE_NOTIFY_H
#define RINGMQ_CORE_NOTIFY_H

/* Send `state`, newline-separated KEY=VALUE lines such as "READY=1",
 * "RELOADING=1", "STOPPING=1" or "STATUS=...". 0 when sent or when no
 * manager listens; -errno when the socket is named but the send failed
 * (the caller logs it: the manager would time the service out). */
int notify_service(const char *state);

#endif
