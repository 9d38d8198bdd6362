import test from 'ava';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../src/envelope.js';

test('an envelope survives the broker as it was sent', (t) => {
  const envelopes: Envelope[] = [
    { kind: 'notify', selector: 'cmd.chat', body: '{"a":"b c"}', channel: 'my room', at: 5 },
    { kind: 'notify', selector: 'css.color$#x', body: '', filter: 'home' },
    { kind: 'pulse' },
    { kind: 'close', connectionId: 'c1' },
    { kind: 'channels', subscribe: ['a'], unsubscribe: ['b'] },
  ];
  for (const envelope of envelopes) t.deepEqual(decodeEnvelope(encodeEnvelope(envelope)), envelope);
});

test('anything else on a topic is refused with an error, never taken for an envelope', (t) => {
  for (const payload of ['', 'not json', 'null', '42', '"text"', '{}', '{"kind":3}', '[]']) {
    t.throws(() => decodeEnvelope(payload), undefined, payload);
  }
});
