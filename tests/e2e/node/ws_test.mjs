// E2E: MQTT.js (an independent client, as browsers and Node apps use it)
// against ringmqd's ws transport over ws://. Started by ws_node_test.sh with
// RINGMQD, RINGMQ_CONF and RINGMQ_SHARDS set; each test starts its own broker
// on ephemeral loopback ports and waits for its "listening on" lines.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import mqtt from 'mqtt';

const WAIT_MS = 10000;
const brokers = [];

// Start ringmqd with a ws listener; resolves to { proc, wsPort, log }.
function startBroker() {
  const args = ['-c', process.env.RINGMQ_CONF,
    '--set', 'listener.default.port=0',
    '--set', `server.shards=${process.env.RINGMQ_SHARDS || '1'}`,
    '--set', 'listener.ws.transport=ws', '--set', 'listener.ws.port=0'];
  const proc = spawn(process.env.RINGMQD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const b = { proc, log: '' };
  brokers.push(b);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker not ready:\n${b.log}`)), WAIT_MS);
    const onData = (d) => {
      b.log += d.toString();
      // File order: listener.default first, then listener.ws.
      const ports = [...b.log.matchAll(/listening on 127\.0\.0\.1:(\d+)/g)].map((m) => +m[1]);
      if (ports.length >= 2 && !b.wsPort) {
        b.wsPort = ports[1];
        clearTimeout(timer);
        resolve(b);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => {
      b.exited = code;
      clearTimeout(timer);
      reject(new Error(`broker exited (${code}):\n${b.log}`));
    });
  });
}

// SIGTERM and wait: a non-zero exit (a leak under ASan) fails the test.
function stopBroker(b) {
  return new Promise((resolve, reject) => {
    if (b.exited !== undefined) return resolve();
    const timer = setTimeout(() => { b.proc.kill('SIGKILL'); reject(new Error('broker did not stop')); }, WAIT_MS);
    b.proc.removeAllListeners('exit');
    b.proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      b.exited = code;
      if (code !== 0) reject(new Error(`broker exit ${code} ${sig}:\n${b.log}`));
      else resolve();
    });
    b.proc.kill('SIGTERM');
  });
}

after(() => {
  for (const b of brokers) if (b.exited === undefined) b.proc.kill('SIGKILL');
});

function connect(b, opts = {}) {
  const c = mqtt.connect(`ws://127.0.0.1:${b.wsPort}/mqtt`, {
    reconnectPeriod: 0, connectTimeout: WAIT_MS, ...opts,
  });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  }).finally(() => { c.removeAllListeners('error'); c.removeAllListeners('close'); });
}

// The next message on c for `topic`, bounded.
function nextMessage(c, topic) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${topic}`)), WAIT_MS);
    const on = (t, payload, packet) => {
      if (t !== topic) return;
      clearTimeout(timer);
      c.removeListener('message', on);
      resolve({ payload, packet });
    };
    c.on('message', on);
  });
}

test('connect, subscribe, publish QoS 0/1/2 round trip over ws://', async () => {
  const b = await startBroker();
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
  const b = await startBroker();
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
  const b = await startBroker();
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
