import test from 'ava';
import { channelNameProblem, encodeFrame, parseEventData, selectorProblem, splitList } from '../src/protocol.js';

test('encodeFrame writes one id line, one data line and a blank line', (t) => {
  t.is(encodeFrame(7, 'cmd.chat', '{"a":1}', 'home'), 'id: 7\ndata: home@cmd.chat {"a":1}\n\n');
  t.is(encodeFrame(1, 'cmd.onConnect', '{}'), 'id: 1\ndata: cmd.onConnect {}\n\n');
  t.is(encodeFrame(2, 'cmd.toggle$#channels', ''), 'id: 2\ndata: cmd.toggle$#channels \n\n');
});

test('encodeFrame folds line breaks so a body cannot start a field or a frame', (t) => {
  t.is(encodeFrame(3, 'cmd.x', '{\n"a":\r\n1\r}\n\nid: 9'), 'id: 3\ndata: cmd.x { "a": 1 }  id: 9\n\n');
});

test('encodeFrame escapes spaces in channel names as %20, and parseEventData restores them', (t) => {
  const frame = encodeFrame(1, 'cmd.chat', '"hi"', 'my room');
  t.is(frame, 'id: 1\ndata: my%20room@cmd.chat "hi"\n\n');
  t.is(parseEventData('my%20room@cmd.chat "hi"').channel, 'my room');
});

test('parseEventData follows the ServiceStack selector grammar', (t) => {
  t.like(parseEventData('home@cmd.chat {"text":"hi there"}'), {
    channel: 'home',
    selector: 'cmd.chat',
    op: 'cmd',
    target: 'chat',
    cssSelector: undefined,
    json: '{"text":"hi there"}',
    body: { text: 'hi there' },
  });
  t.like(parseEventData('cmd.toggle$#channels '), { op: 'cmd', target: 'toggle', cssSelector: '#channels', body: null });
  t.like(parseEventData('css.background-image$#top url(x)'), { op: 'css', target: 'background-image', cssSelector: '#top', body: 'url(x)' });
  t.like(parseEventData('css.visibility$img,a%20b hidden'), { cssSelector: 'img,a b' });
  t.like(parseEventData('document.title New Title'), { op: 'document', target: 'title', body: 'New Title', json: 'New Title' });
  t.like(parseEventData('tv.off'), { op: 'tv', target: 'off', json: '', body: null });
  t.throws(() => parseEventData('nodot body'), { message: 'invalid selector format: nodot' });
});

test('channel names: no @, comma or control characters; anything else goes', (t) => {
  for (const ok of ['home', 'my room', 'a.b', 'x.*', 'y.>', 'café', '*']) t.is(channelNameProblem(ok), undefined, ok);
  for (const bad of ['', 'a@b', 'a,b', 'a\nb', 'a\u0000b']) t.truthy(channelNameProblem(bad), JSON.stringify(bad));
});

test('selectors must be op.target with no spaces, @ or control characters', (t) => {
  for (const ok of ['cmd.chat', 'css.color$#top', 'tv.watch', 'cmd.toggle$img,a']) t.is(selectorProblem(ok), undefined, ok);
  for (const bad of ['chat', '.x', 'cmd.', 'cmd.a b', 'a@cmd.b', 'cmd.a\nb']) t.truthy(selectorProblem(bad), bad);
});

test('splitList splits comma lists and drops blanks', (t) => {
  t.deepEqual(splitList('a, b,,c '), ['a', 'b', 'c']);
  t.deepEqual(splitList(['a,b', 'c']), ['a', 'b', 'c']);
  t.deepEqual(splitList(undefined), []);
});
