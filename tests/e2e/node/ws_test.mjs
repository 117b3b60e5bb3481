// E2E: MQTT.js (an independent client, as browsers and Node apps use it)
// against ringmqd's ws transport over ws://. Started by ws_node_test.sh with
// RINGMQD, RINGMQ_CONF and RINGMQ_SHARDS set; each test starts its own broker
// on ephemeral loopback ports and waits for its "listening on" lines.
import { connect as connectUrl, transportTests } from './lib.mjs';

const WS = ['listener.ws.transport=ws', 'listener.ws.port=0'];

transportTests('ws://', WS, (port, opts) => connectUrl(`ws://127.0.0.1:${port}/mqtt`, opts));
