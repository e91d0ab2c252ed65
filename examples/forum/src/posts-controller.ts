import { inject } from 'inversify';
import { z } from 'zod';
import { Controller, Get, HttpError, Param } from '@trellis/app';
import { posts, type Post } from './posts.js';
import { UsersClient, type Author } from './users-client.js';

/** A post with its author, who lives in the users service. */
export interface PostView extends Omit<Post, 'authorId'> {
  readonly author: { readonly id: string; readonly name: string };
  /** The users instance that answered for the author: shows calls spreading over instances. */
  readonly authorServedBy: string;
}

// A failed call to users becomes a 503 or 502 with the error's code, by the app's error handler.
@Controller('/posts')
export class PostsController {
  constructor(@inject(UsersClient) private readonly users: UsersClient) {}

  /** All posts, each author fetched once, in parallel. */
  @Get()
  async all(): Promise<{ posts: PostView[] }> {
    const ids = [...new Set(posts.map((p) => p.authorId))];
    const authors = new Map(await Promise.all(ids.map(async (id) => [id, await this.users.user(id)] as const)));
    return { posts: posts.map((post) => view(post, authors.get(post.authorId) as Author)) };
  }

  @Get('/:id')
  async one(@Param('id', z.string().regex(/^\d+$/, 'must be a number')) id: string): Promise<PostView> {
    const post = posts.find((p) => p.id === id);
    if (post === undefined) throw new HttpError(404, 'NOT_FOUND', `no post with id "${id}"`);
    return view(post, await this.users.user(post.authorId));
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
