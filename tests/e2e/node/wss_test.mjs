// E2E: MQTT.js over wss:// (WebSocket over TLS, as browsers reach a broker
// on 443) against ringmqd's wss transport. Started by ws_node_test.sh with
// RINGMQD, RINGMQ_CONF and RINGMQ_SHARDS set (meson runs it with 1 and 4
// shards: with 4, most connections are accepted on a shard that is not
// their client id's home and move there with their TLS keys and WebSocket
// state). The certificates are made here by the openssl CLI, in a
// directory of the test's own (no private key is committed).
import { after } from 'node:test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectUrl, transportTests } from './lib.mjs';

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
function connect(port, opts = {}) {
  return connectUrl(`wss://127.0.0.1:${port}/mqtt`, { ca, rejectUnauthorized: true, ...opts });
}

transportTests('wss://', WSS, connect);
