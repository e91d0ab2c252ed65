// @ts-check
// The home page: sign up (then signed in at once), sign in, and who is signed in.
import { api, byTestId, onSubmit, renderFrame, showNotice, signIn } from './page.js';

const signedOut = byTestId('signed-out');
const signedIn = byTestId('signed-in');

/** @param {{ id: string, name: string } | undefined} user */
function show(user) {
  signedOut.hidden = user !== undefined;
  signedIn.hidden = user === undefined;
  byTestId('welcome-name').textContent = user?.name ?? '';
}

onSubmit(/** @type {HTMLFormElement} */ (byTestId('signup-form')), async ({ name = '', password = '' }) => {
  await api('users', '/users', { method: 'POST', body: { name, password } });
  await signIn(name, password);
  location.reload();
});

onSubmit(/** @type {HTMLFormElement} */ (byTestId('signin-form')), async ({ name = '', password = '' }) => {
  await signIn(name, password);
  location.reload();
});

const user = await renderFrame('home');
show(user);
if (user !== undefined && new URLSearchParams(location.search).has('welcome')) showNotice(`Welcome, ${user.name}.`);
