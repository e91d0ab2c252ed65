import { inject, injectable } from 'inversify';
import { clientToken } from '@trellis/app';
import { ServiceClient } from '@trellis/client';
import { posts, type Post } from './posts.js';

/** What the users service answers for one user. */
interface Author {
  readonly id: string;
  readonly name: string;
  readonly servedBy: string;
}

/** A post with its author, as the forum shows it. */
export interface PostView extends Omit<Post, 'authorId'> {
  readonly author: { readonly id: string; readonly name: string };
  /** The users instance that answered for the author: shows calls spreading over instances. */
  readonly authorServedBy: string;
}

/** Posts joined with their authors, who live in the users service. */
@injectable()
export class Timeline {
  constructor(@inject(clientToken('users')) private readonly users: ServiceClient) {}

  /** All posts, each author fetched once, in parallel. */
  async all(): Promise<PostView[]> {
    const authorIds = [...new Set(posts.map((p) => p.authorId))];
    const authors = new Map(await Promise.all(authorIds.map(async (id) => [id, await this.#author(id)] as const)));
    return posts.map((post) => view(post, authors.get(post.authorId) as Author));
  }

  /** One post, or undefined when there is none with that id. */
  async one(id: string): Promise<PostView | undefined> {
    const post = posts.find((p) => p.id === id);
    return post === undefined ? undefined : view(post, await this.#author(post.authorId));
  }

  #author(id: string): Promise<Author> {
    return this.users.get<Author>(`/users/${encodeURIComponent(id)}`, { template: '/users/:id' });
  }
}

function view(post: Post, author: Author): PostView {
  return {
    id: post.id,
    title: post.title,
    body: post.body,
    author: { id: author.id, name: author.name },
    authorServedBy: author.servedBy,
  };
}
