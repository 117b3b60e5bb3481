// Helpers shared by the MQTT.js tests (ws_test.mjs, wss_test.mjs): a
// ringmqd started on ephemeral loopback ports, bounded waits for its
// "listening on" lines, MQTT.js clients and messages. RINGMQD, RINGMQ_CONF
// and RINGMQ_SHARDS come from ws_node_test.sh.
import { after } from 'node:test';
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
