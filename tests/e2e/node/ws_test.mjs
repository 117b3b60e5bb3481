// E2E: MQTT.js (an independent client, as browsers and Node apps use it)
// against ringmqd's ws transport over ws://. Started by ws_node_test.sh with
// RINGMQD, RINGMQ_CONF and RINGMQ_SHARDS set; each test starts its own broker
// on ephemeral loopback ports and waits for its "listening on" lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, stopBroker, connect as connectUrl, nextMessage } from './lib.mjs';

const WS = ['listener.ws.transport=ws', 'listener.ws.port=0'];

function connect(b, opts = {}) {
  return connectUrl(`ws://127.0.0.1:${b.port}/mqtt`, opts);
}

test('connect, subscribe, publish QoS 0/1/2 round trip over ws://', async () => {
  const b = await startBroker(WS);
  for (const protocolVersion of [4, 5]) {
    const sub = await connect(b, { clientId: `js-sub-${protocolVersion}`, protocolVersion });
    const pub = await connect(b, { clientId: `js-pub-${protocolVersion}`, protocolVersion });
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

test('a 256 KiB message both ways', async () => {
  const b = await startBroker(WS);
  const sub = await connect(b, { clientId: 'js-big-sub' });
  const pub = await connect(b, { clientId: 'js-big-pub' });
  await sub.subscribeAsync('big', { qos: 1 });
  const body = Buffer.alloc(256 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 10)) & 0xff;
  const got = nextMessage(sub, 'big');
  await pub.publishAsync('big', body, { qos: 1 });
  const { payload } = await got;
  assert.equal(payload.length, body.length);
  assert.ok(payload.equals(body), 'payload differs');
  await pub.endAsync();
  await sub.endAsync();
  await stopBroker(b);
});

// With 4 shards most of these connections are accepted on a shard that is
// not their client id's home and move there with their WebSocket state.
test('16 clients with their own ids all reach each other', async () => {
  const b = await startBroker(WS);
  const n = 16;
  const cs = [];
  for (let i = 0; i < n; i++) {
    const c = await connect(b, { clientId: `js-many-${i}`, clean: true });
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
