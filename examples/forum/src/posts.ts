/** A post as the forum keeps it: the author is a users-service id. */
export interface Post {
  readonly id: string;
  readonly authorId: string;
  readonly title: string;
  readonly body: string;
}

/** The demo's posts; a real service would keep them in a database. */
export const posts: readonly Post[] = [
  { id: '1', authorId: '1', title: 'Notes on the Analytical Engine', body: 'It weaves algebraic patterns.' },
  { id: '2', authorId: '2', title: 'Found a moth in relay 70', body: 'First actual case of bug being found.' },
  {
    id: '3',
    authorId: '3',
    title: 'Go To considered harmful',
    body: 'The quality of programmers is a decreasing function.',
  },
  { id: '4', authorId: '1', title: 'On Bernoulli numbers', body: 'Note G.' },
];
