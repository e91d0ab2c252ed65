/** A user as the users service returns it. */
export interface User {
  readonly id: string;
  readonly name: string;
  readonly email: string;
}

/** The demo's users; a real service would keep them in a database. */
export const users: readonly User[] = [
  { id: '1', name: 'Ada Lovelace', email: 'ada@example.org' },
  { id: '2', name: 'Grace Hopper', email: 'grace@example.org' },
  { id: '3', name: 'Edsger Dijkstra', email: 'edsger@example.org' },
];
