// E2E: MQTT.js over wss:// (WebSocket over TLS, as browsers reach a broker
// on 443) against ringmqd's wss transport. Started by ws_node_test.sh with
// RINGMQD, RINGMQ_CONF and RINGMQ_SHARDS set (meson runs it with 1 and 4
// shards: with 4, most connections are accepted on a shard that is not
// their client id's home and move there with their TLS keys and WebSocket
// state). The certificates are made here by the openssl CLI, in a
// directory of the test's own (no private key is committed).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, stopBroker, connect as connectUrl, nextMessage } from './lib.mjs';

// A P-256 CA and a server certificate for 127.0.0.1 that it signed.
const dir = mkdtempSync(join(tmpdir(), 'ringmq-wss-'));
after(() => rmSync(dir, { recursive: true, force: true }));
execFileSync('sh', ['-c', `set -e; cd ${dir}; k='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'
openssl req -x509 $k -keyout ca.key -out ca.crt -days 2 -subj /CN=ringmq-wss-test-ca
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
openssl req $k -keyout server.key -out server.csr -subj /CN=localhost
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext`],
{ stdio: 'pipe' });
const ca = readFileSync(join(dir, 'ca.crt'));

const WSS = ['listener.wss.transport=wss', 'listener.wss.port=0',
  `listener.wss.tls_cert=${join(dir, 'server.crt')}`,
  `listener.wss.tls_key=${join(dir, 'server.key')}`];

// Verifies the broker's certificate against the test CA (never
// rejectUnauthorized: false).
function connect(b, opts = {}) {
  return connectUrl(`wss://127.0.0.1:${b.port}/mqtt`, { ca, rejectUnauthorized: true, ...opts });
}

test('connect, subscribe, publish QoS 0/1/2 round trip over wss://', async () => {
  const b = await startBroker(WSS);
  for (const protocolVersion of [4, 5]) {
    const sub = await connect(b, { clientId: `wss-sub-${protocolVersion}`, protocolVersion });
    const pub = await connect(b, { clientId: `wss-pub-${protocolVersion}`, protocolVersion });
    const granted = await sub.subscribeAsync('js/+', { qos: 2 });
    assert.equal(granted[0].qos, 2);
    for (const qos of [0, 1, 2]) {
      const topic = `js/q${qos}`;
      const got = nextMessage(sub, topic);
      await pub.publishAsync(topic, `hello ${qos}`, { qos });
      const { payload, packet } = await got;
      assert.equal(payload.toString(), `hello ${qos}`);
      assert.equal(packet.qos, qos);
    }
    await pub.endAsync();
    await sub.endAsync();
  }
  await stopBroker(b);
});

// 256 KiB: many TLS records, frames larger than one record each way.
test('a 256 KiB message both ways over wss://', async () => {
  const b = await startBroker(WSS);
  const sub = await connect(b, { clientId: 'wss-big-sub' });
  const pub = await connect(b, { clientId: 'wss-big-pub' });
  await sub.subscribeAsync('big', { qos: 1 });
  const body = Buffer.alloc(256 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 10)) & 0xff;
  const got = nextMessage(sub, 'big');
  await pub.publishAsync('big', body, { qos: 1 });
  const { payload } = await got;
  assert.ok(payload.equals(body), 'payload differs');
  await pub.endAsync();
  await sub.endAsync();
  await stopBroker(b);
});

// With 4 shards most of these connections move home after their CONNECT,
// their TLS keys and frame parser with them: each then sends and receives
// through the home shard.
test('16 wss clients with their own ids all reach each other', async () => {
  const b = await startBroker(WSS);
  const n = 16;
  const cs = [];
  for (let i = 0; i < n; i++) {
    const c = await connect(b, { clientId: `wss-many-${i}`, clean: true });
    await c.subscribeAsync(`many/${i}`, { qos: 1 });
    cs.push(c);
  }
  for (let i = 0; i < n; i++) {
    const to = (i + 5) % n;
    const got = nextMessage(cs[to], `many/${to}`);
    await cs[i].publishAsync(`many/${to}`, `from ${i}`, { qos: 1 });
    assert.equal((await got).payload.toString(), `from ${i}`);
  }
  for (const c of cs) await c.endAsync();
  await stopBroker(b);
});
