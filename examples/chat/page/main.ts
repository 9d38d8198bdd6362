/**
 * The Chat page: one log per channel, who is online, private messages with
 * `@name`, and ServiceStack Chat's `/selector message` commands. It uses the
 * project's own client; the server bundles this file for the browser.
 */
import { ServerEventsClient, type ConnectionInfo, type ReceivedMessage, type ServerEventUser } from '../../../src/client/index.js';
import type { ChatMessage } from '../services.js';


const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const channels = (new URLSearchParams(location.search).get('channels') ?? 'home')
  .split(',')
  .map((c) => c.trim())
  .filter(Boolean);
if (channels.length === 0) channels.push('home');

let me: ConnectionInfo | undefined;
let active = channels[0]!;
let users: ServerEventUser[] = [];
const logs = new Map<string, HTMLElement>();
const seen = new Set<number>();

// ---- layout ---------------------------------------------------------------------

for (const channel of channels) {
  const tab = document.createElement('button');
  tab.type = 'button';
  tab.dataset.channel = channel;
  tab.textContent = `#${channel}`;
  tab.onclick = () => showChannel(channel);
  byId('channels').append(tab);
  const log = document.createElement('div');
  log.className = 'log';
  log.dataset.channel = channel;
  byId('messages').append(log);
  logs.set(channel, log);
}
showChannel(active);

function showChannel(channel: string): void {
  active = channel;
  for (const tab of byId('channels').querySelectorAll<HTMLButtonElement>('button')) {
    const isActive = tab.dataset.channel === channel;
    tab.classList.toggle('active', isActive);
    if (isActive) tab.querySelector('.unread')?.remove();
  }
  for (const [name, log] of logs) log.classList.toggle('active', name === channel);
  void refreshUsers();
}

/** Adds a line to a channel's log. Chat text arrives HTML-escaped from the server. */
function addEntry(channel: string | undefined, kind: string, who: string, html: string): void {
  const log = logs.get(channel ?? active) ?? logs.get(active)!;
  const entry = document.createElement('div');
  entry.className = `entry ${kind}`;
  if (who) {
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = who;
    entry.append(name);
  }
  const text = document.createElement('span');
  text.className = 'text';
  text.innerHTML = html;
  entry.append(text);
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 30;
  log.append(entry);
  if (atBottom) log.scrollTop = log.scrollHeight;
  const target = log.dataset.channel!;
  if (target !== active && kind !== 'system') markUnread(target);
}

function markUnread(channel: string): void {
  const tab = byId('channels').querySelector<HTMLButtonElement>(`button[data-channel="${CSS.escape(channel)}"]`);
  if (!tab) return;
  const badge = tab.querySelector('.unread') ?? tab.appendChild(Object.assign(document.createElement('span'), { className: 'unread', textContent: '0' }));
  badge.textContent = String(Number(badge.textContent) + 1);
}

const escapeText = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const system = (text: string, channel?: string) => addEntry(channel, 'system', '', escapeText(text));
const problem = (text: string) => addEntry(active, 'error', '', escapeText(text));

function showChat(message: ChatMessage): void {
  if (seen.has(message.id) && !message.private) return;
  seen.add(message.id);
  const mine = message.fromUserId === me?.userId;
  addEntry(message.channel, `chat${mine ? ' mine' : ''}${message.private ? ' private' : ''}`, message.fromName, message.message);
}

// ---- the connection -----------------------------------------------------------------

const client = new ServerEventsClient(location.origin, channels, {
  handlers: {
    onConnect: (info) => {
      me = info;
      byId('me').textContent = info.displayName;
      byId<HTMLImageElement>('avatar').src = info.profileUrl;
      void loadHistory();
      void refreshUsers();
    },
    onJoin: () => void refreshUsers(),
    onLeave: () => void refreshUsers(),
    onUpdate: () => void refreshUsers(),
    onReconnect: () => system('Reconnecting…'),
    // Missed events could not be replayed: load the history again (seen ids keep it free of doubles).
    onReset: () => {
      system('Some messages could not be replayed; reloading the history.');
      void loadHistory();
      void refreshUsers();
    },
    onException: (error) => console.warn('chat:', error),
    chat: (message: ChatMessage) => showChat(message),
    announce: (text: string) => announce(text),
    toggle: (_body: unknown, message: ReceivedMessage) => {
      for (const el of document.querySelectorAll<HTMLElement>(message.cssSelector ?? '')) el.hidden = !el.hidden;
    },
    addReceiver: (name: string) => {
      const receiver = (window as unknown as Record<string, unknown>)[name];
      if (receiver && typeof receiver === 'object') client.registerNamedReceiver(name, receiver);
      system(`${name} now receives commands`);
    },
    removeReceiver: (name: string) => {
      client.unregisterReceiver(name);
      system(`${name} no longer receives commands`);
    },
    stopListening: () => {
      void client.stop();
      system('Stopped listening. Reload the page to come back.');
    },
    onMessage: (message: ReceivedMessage) => {
      if (message.selector !== 'cmd.chat') system(`${message.selector} ${message.json}`.trim(), message.channel);
    },
  },
  receivers: {
    tv: { watch: (url: string) => watch(url), off: () => tvOff() },
    document,
  },
});
client.addListener('customEvent', (body) => system(`customEvent raised with ${JSON.stringify(body)}`));
client.start();

async function loadHistory(): Promise<void> {
  const res = await fetch(`/chathistory?channels=${encodeURIComponent(channels.join(','))}`);
  if (!res.ok) return;
  const { results } = (await res.json()) as { results: ChatMessage[] };
  for (const message of results) showChat(message);
}

let refreshing = false;
let refreshAgain = false;
/** Joins often come in bursts: one request at a time, and one more if anything changed meanwhile. */
async function refreshUsers(): Promise<void> {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      const res = await fetch(`/event-subscribers?channels=${encodeURIComponent(active)}`);
      if (!res.ok) return;
      const list = (await res.json()) as Record<string, string>[];
      const unique = new Map(list.map((u) => [u.userId!, u]));
      users = [...unique.values()].map((u) => ({
        userId: u.userId!,
        displayName: u.displayName!,
        profileUrl: u.profileUrl!,
        channels: (u.channels ?? '').split(','),
        meta: {},
      }));
      renderUsers();
    } while (refreshAgain);
  } finally {
    refreshing = false;
  }
}

function renderUsers(): void {
  byId('count').textContent = `(${users.length})`;
  byId('users').replaceChildren(
    ...users.map((user) => {
      const item = document.createElement('li');
      item.classList.toggle('me', user.userId === me?.userId);
      item.dataset.userId = user.userId;
      const img = Object.assign(document.createElement('img'), { src: user.profileUrl, alt: '' });
      item.append(img, document.createTextNode(user.displayName));
      item.title = `Send @${user.displayName} a private message`;
      item.onclick = () => {
        const input = byId<HTMLInputElement>('input');
        input.value = `@${user.displayName} `;
        input.focus();
      };
      return item;
    }),
  );
}

// ---- sending --------------------------------------------------------------------------

byId<HTMLFormElement>('send').onsubmit = async (event) => {
  event.preventDefault();
  const input = byId<HTMLInputElement>('input');
  const line = input.value.trim();
  if (!line || !me) return;
  try {
    await send(line);
    input.value = '';
  } catch (error) {
    problem((error as Error).message);
  }
};

/** `[@name|@me] [/selector] message`: a chat line, or a command, to the channel or to one user. */
async function send(line: string): Promise<void> {
  let rest = line;
  let toUserId: string | undefined;
  if (rest.startsWith('@')) {
    const space = rest.indexOf(' ');
    const name = (space < 0 ? rest : rest.slice(0, space)).slice(1);
    rest = space < 0 ? '' : rest.slice(space + 1).trim();
    toUserId = name === 'me' ? me!.userId : users.find((u) => u.displayName === name)?.userId;
    if (!toUserId) throw new Error(`Nobody called '${name}' is in #${active}`);
  }
  let selector: string | undefined;
  if (rest.startsWith('/')) {
    const space = rest.indexOf(' ');
    selector = (space < 0 ? rest : rest.slice(0, space)).slice(1);
    rest = space < 0 ? '' : rest.slice(space + 1);
  }
  if (!rest.trim() && !selector) return;
  const res = await fetch(`/channels/${encodeURIComponent(active)}/${selector ? 'raw' : 'chat'}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ from: me!.id, toUserId, message: rest, selector: selector ?? 'cmd.chat' }),
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { responseStatus?: { message?: string } };
    throw new Error(body.responseStatus?.message ?? `${res.status} ${res.statusText}`);
  }
}

for (const code of byId('examples').querySelectorAll('code')) {
  code.addEventListener('click', () => {
    const input = byId<HTMLInputElement>('input');
    input.value = code.textContent ?? '';
    input.focus();
  });
}

// ---- commands -------------------------------------------------------------------------

let announceTimer: ReturnType<typeof setTimeout> | undefined;
function announce(text: string): void {
  const box = byId('announce');
  box.innerHTML = text;
  box.hidden = false;
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => (box.hidden = true), 2000);
}

function watch(url: string): void {
  const youtube = /(?:youtu\.be\/|youtube\.com\/watch\?v=)([\w-]{6,})/.exec(url);
  const src = youtube ? `https://www.youtube.com/embed/${youtube[1]}?autoplay=1` : url;
  if (!/^https?:\/\//.test(src)) return problem(`tv.watch needs an http(s) URL, not '${url}'`);
  byId<HTMLIFrameElement>('tv').querySelector('iframe')!.src = src;
  byId('tv').hidden = false;
}

function tvOff(): void {
  byId('tv').querySelector('iframe')!.src = 'about:blank';
  byId('tv').hidden = true;
}
byId('tv-off').onclick = tvOff;
