/* core/notify: the sd_notify datagram, received by a socket of the test's
 * own standing in for the service manager. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/notify.h"

/* A datagram socket bound to `name` (a path, or "@abstract"). */
static int manager(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, salen), 0, "%s", strerror(errno));
    return fd;
}

static void expect(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    cr_assert(n >= 0, "nothing received: %s", strerror(errno));
    buf[n] = '\0';
    cr_assert_str_eq(buf, want);
}

Test(notify, nothing_without_a_manager)
{
    unsetenv("NOTIFY_SOCKET");
    cr_assert_eq(notify_service("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    cr_assert_eq(notify_service("READY=1"), 0);
}

Test(notify, a_path_socket_gets_the_state)
{
    char path[] = "/tmp/ringmq-notify-XXXXXX";
    int tmp = mkstemp(path);
    cr_assert(tmp >= 0);
    close(tmp);
    unlink(path);
    int fd = manager(path);
    setenv("NOTIFY_SOCKET", path, 1);
    cr_assert_eq(notify_service("READY=1"), 0);
    expect(fd, "READY=1");
    cr_assert_eq(notify_service("RELOADING=1\nSTATUS=reloading"), 0);
    expect(fd, "RELOADING=1\nSTATUS=reloading");
    close(fd);
    unlink(path);
}

Test(notify, an_abstract_socket_gets_the_state)
{
    char name[64];
    snprintf(name, sizeof(name), "@ringmq-notify-test-%d", (int)getpid());
    int fd = manager(name);
    setenv("NOTIFY_SOCKET", name, 1);
    cr_assert_eq(notify_service("STOPPING=1"), 0);
    expect(fd, "STOPPING=1");
    close(fd);
}

Test(notify, a_bad_or_absent_socket_is_an_error)
{
    setenv("NOTIFY_SOCKET", "relative/name", 1);
    cr_assert_eq(notify_service("READY=1"), -EINVAL);
    setenv("NOTIFY_SOCKET", "/nonexistent/ringmq/notify", 1);
    cr_assert_lt(notify_service("READY=1"), 0, "the manager would time the service out: say so");
}
