// Helpers shared by the MQTT.js tests (ws_test.mjs, wss_test.mjs): a
// ringmqd started on ephemeral loopback ports, bounded waits for its
// "listening on" lines, MQTT.js clients and messages. RINGMQD, RINGMQ_CONF
// and RINGMQ_SHARDS come from ws_node_test.sh.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import mqtt from 'mqtt';

export const WAIT_MS = 10000;
const brokers = [];

// Start ringmqd with listener.default and one more listener set by `sets`
// (--set values); resolves to { proc, port, log }, port being the second
// listener's (file order: listener.default first).
export function startBroker(sets) {
  const args = ['-c', process.env.RINGMQ_CONF,
    '--set', 'listener.default.port=0',
    '--set', `server.shards=${process.env.RINGMQ_SHARDS || '1'}`];
  for (const s of sets) args.push('--set', s);
  const proc = spawn(process.env.RINGMQD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const b = { proc, log: '' };
  brokers.push(b);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker not ready:\n${b.log}`)), WAIT_MS);
    const onData = (d) => {
      b.log += d.toString();
      const ports = [...b.log.matchAll(/listening on 127\.0\.0\.1:(\d+)/g)].map((m) => +m[1]);
      if (ports.length >= 2 && !b.port) {
        b.port = ports[1];
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
export function stopBroker(b) {
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

// An MQTT.js client of url, resolved once CONNACK came.
export function connect(url, opts = {}) {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: WAIT_MS, ...opts });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  }).finally(() => { c.removeAllListeners('error'); c.removeAllListeners('close'); });
}

// The next message on c for `topic`, bounded.
export function nextMessage(c, topic) {
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

// The tests every WebSocket transport passes, over `scheme` ("ws://",
// "wss://"): brokers started with `sets`, clients made by connect(port,
// opts). With 4 shards most connections of the last test are accepted on a
// shard that is not their client id's home and move there with their
// transport's state.
export function transportTests(scheme, sets, connect) {
  const prefix = scheme.slice(0, -3); // ws, wss: the client ids' prefix
  test(`connect, subscribe, publish QoS 0/1/2 round trip over ${scheme}`, async () => {
    const b = await startBroker(sets);
    for (const protocolVersion of [4, 5]) {
      const sub = await connect(b.port, { clientId: `${prefix}-sub-${protocolVersion}`, protocolVersion });
      const pub = await connect(b.port, { clientId: `${prefix}-pub-${protocolVersion}`, protocolVersion });
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

  test(`a 256 KiB message both ways over ${scheme}`, async () => {
    const b = await startBroker(sets);
    const sub = await connect(b.port, { clientId: `${prefix}-big-sub` });
    const pub = await connect(b.port, { clientId: `${prefix}-big-pub` });
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

  test(`16 clients over ${scheme} with their own ids all reach each other`, async () => {
    const b = await startBroker(sets);
    const n = 16;
    const cs = [];
    for (let i = 0; i < n; i++) {
      const c = await connect(b.port, { clientId: `${prefix}-many-${i}`, clean: true });
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
}
