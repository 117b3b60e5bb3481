/* net/ws_upgrade: the Upgrade request read in any pieces, and its answer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "net/ws_upgrade.h"

static const struct ws_upgrade_policy policy = {.path = "/mqtt", .origins = ""};

/* Feed `req` `piece` bytes at a time: the final result, *used counted from
 * the start of req. */
static int feed_all(const char *req, size_t len, size_t piece, size_t *used, char *ans,
                    size_t *alen)
{
    struct ws_upgrade *u = NULL;
    int rc = WS_UPGRADE_MORE;
    size_t off = 0;
    while (off < len && rc == WS_UPGRADE_MORE) {
        size_t k = piece < len - off ? piece : len - off, u_used = 0;
        rc = ws_upgrade_feed(&u, (const uint8_t *)req + off, k, &u_used);
        if (rc == WS_UPGRADE_DONE) {
            *used = off + u_used;
            rc = ws_upgrade_answer(u, &policy, ans, alen);
        }
        off += k;
    }
    ws_upgrade_destroy(u);
    return rc;
}

Test(ws_upgrade, accept_key_of_the_rfc_sample)
{
    char out[29];
    cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 1.3 */
    cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", 23, out), -EINVAL);
    cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZ!==", 24, out), -EINVAL);
}

Test(ws_upgrade, byte_at_a_time_with_frames_after_it)
{
    const char req[] = "GET /mqtt HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\n"
                       "connection: keep-alive,upgrade\r\nsec-websocket-key: "
                       "dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n"
                       "Sec-WebSocket-Protocol: mqttv3.1 , mqtt\r\n\r\n\x82\x85";
    size_t head = sizeof(req) - 1 - 2;
    for (size_t piece = 1; piece <= sizeof(req); piece += 7) {
        char ans[WS_UPGRADE_ANSWER_MAX];
        size_t used = 0, alen = 0;
        cr_assert_eq(feed_all(req, sizeof(req) - 1, piece, &used, ans, &alen), 101, "piece %zu",
                     piece);
        cr_assert_eq(used, head, "piece %zu: the frame bytes are not the request's", piece);
        cr_assert(strstr(ans, "Sec-WebSocket-Protocol: mqtt\r\n"), "%s", ans);
    }
}

Test(ws_upgrade, empty_header_value_does_not_join_names)
{
    /* "X-Empty:" ends where the next name starts (http_parser reports its
     * empty value with 0 bytes): the key after it is seen. */
    const char req[] = "GET /mqtt HTTP/1.1\r\nX-Empty:\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    char ans[WS_UPGRADE_ANSWER_MAX];
    size_t used, alen;
    cr_assert_eq(feed_all(req, sizeof(req) - 1, 5, &used, ans, &alen), 101, "%s", ans);
}

Test(ws_upgrade, a_second_key_is_refused)
{
    const char req[] = "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    char ans[WS_UPGRADE_ANSWER_MAX];
    size_t used, alen;
    cr_assert_eq(feed_all(req, sizeof(req) - 1, sizeof(req), &used, ans, &alen), 400);
    cr_assert(strstr(ans, "Connection: close\r\n"));
}

Test(ws_upgrade, header_block_is_bounded)
{
    static char req[WS_UPGRADE_MAX + 64];
    memset(req, 'a', sizeof(req));
    memcpy(req, "GET /mqtt HTTP/1.1\r\nX: ", 23);
    char ans[WS_UPGRADE_ANSWER_MAX];
    size_t used, alen;
    cr_assert_eq(feed_all(req, sizeof(req), 1000, &used, ans, &alen), 431);
    cr_assert_eq(feed_all(req, sizeof(req), sizeof(req), &used, ans, &alen), 431);
}
