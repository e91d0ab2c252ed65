// @ts-check
// The chat page: a room's history over HTTP, then live over a WebSocket through the gateway
// (the session cookie goes with the upgrade; the gateway turns it into the user). Lines are put
// in the page as text, so HTML in a message shows as typed.
import { api, byTestId, el, onSubmit, renderFrame, showError, showNotice } from '/assets/page.js';

/** @typedef {{ id: string, room: string, user: { id: string, name: string }, text: string, at: string }} ChatMessage */

const list = byTestId('messages');
const status = byTestId('chat-status');
/** @type {WebSocket | undefined} */
let socket;
/** @type {string | undefined} */
let room;
/** @type {string | undefined} */
let older;
let reconnects = 0;

/** @param {ChatMessage} m */
function line(m) {
  const li = el(
    'li',
    { testid: 'message' },
    el('span', { testid: 'message-user', className: 'meta' }, m.user.name),
    ' ',
    el('span', { testid: 'message-text', className: 'text' }, m.text),
    el('span', { className: 'meta', title: m.at }, ` · ${new Date(m.at).toLocaleTimeString()}`),
  );
  li.dataset['messageId'] = m.id;
  return li;
}

/** @param {ChatMessage} m */
function append(m) {
  if (list.querySelector(`[data-message-id="${CSS.escape(m.id)}"]`)) return;
  list.append(line(m));
  list.lastElementChild?.scrollIntoView({ block: 'nearest' });
}

/** @param {Array<{ id: string, name: string }>} users */
function showPresence(users) {
  byTestId('presence').replaceChildren(...users.map((u) => el('li', { testid: 'presence-user' }, u.name)));
}

/** @param {boolean} fresh */
async function loadHistory(fresh) {
  const query = new URLSearchParams({ limit: '50' });
  if (!fresh && older) query.set('before', older);
  const answer = await api('chat', `/rooms/${room}/messages?${query}`);
  /** @type {ChatMessage[]} */
  const messages = answer.messages;
  if (fresh) list.replaceChildren(...messages.map(line));
  else list.prepend(...messages.map(line));
  older = answer.next ?? undefined;
  byTestId('messages-more').hidden = older === undefined;
}

function connect() {
  const url = new URL(`/api/chat/rooms/${room}/socket`, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url);
  socket = ws;
  status.textContent = 'connecting…';
  ws.addEventListener('open', () => {
    status.textContent = 'connected';
    reconnects = 0;
  });
  ws.addEventListener('message', (event) => {
    const frame = JSON.parse(String(event.data));
    if (frame.type === 'message') append(frame);
    else if (frame.type === 'presence') showPresence(frame.users);
    else if (frame.type === 'mailed') {
      showNotice(`Not here, so mailed: ${frame.users.map((/** @type {{ name: string }} */ u) => u.name).join(', ')}.`);
    } else if (frame.type === 'error') showError(new Error(frame.message));
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return; // replaced by a newer socket (another room)
    status.textContent = `disconnected (${event.code}${event.reason ? `: ${event.reason}` : ''})`;
    if (event.code === 4401) showError(new Error('Sign in to chat (on the home page).'));
    else if (event.code === 1013) showError(new Error(event.reason || 'The room is full; try again later.'));
    else if (reconnects < 5) {
      // 1001: the instance is shutting down; 1006: it went away. Another instance takes us.
      reconnects++;
      setTimeout(() => {
        if (socket === ws) void loadHistory(true).then(connect, (error) => showError(error));
      }, 500 * reconnects);
    } else showError(new Error('The chat service is unavailable right now; reload to try again.'));
  });
}

/** @param {string} name */
async function join(name) {
  if (!/^[a-z0-9-]{1,32}$/.test(name)) throw new Error('A room name is 1 to 32 characters of a-z, 0-9 and -.');
  room = name;
  byTestId('room-title').textContent = `#${name}`;
  /** @type {HTMLInputElement} */ (byTestId('room-name')).value = name;
  const previous = socket;
  socket = undefined;
  previous?.close(1000, 'left the room');
  showPresence([]);
  await loadHistory(true);
  connect();
}

onSubmit(/** @type {HTMLFormElement} */ (byTestId('room-form')), async ({ room: name = '' }) => {
  location.hash = `#${name}`;
});

onSubmit(/** @type {HTMLFormElement} */ (byTestId('message-form')), async ({ text = '' }) => {
  if (socket === undefined || socket.readyState !== WebSocket.OPEN) throw new Error('Not connected to the room.');
  socket.send(JSON.stringify({ type: 'message', text }));
  /** @type {HTMLFormElement} */ (byTestId('message-form')).reset();
});

byTestId('messages-more').addEventListener('click', () => void loadHistory(false).catch((e) => showError(e)));
const fromHash = () => decodeURIComponent(location.hash.slice(1)) || 'general';
window.addEventListener('hashchange', () => void join(fromHash()).catch((e) => showError(e)));

const user = await renderFrame('chat');
if (user === undefined) showError(new Error('Sign in to chat (on the home page).'));
await join(fromHash()).catch((e) => showError(e));
