import { Client, Get, Param, remoteCall, Timeout } from '@trellis/app';

/** What the users service answers for one user. */
export interface Author {
  readonly id: string;
  readonly name: string;
  readonly servedBy: string;
}

/** The users service as the forum calls it: each method a governed call, load balanced and retried. */
@Client('users')
@Timeout(2_000)
export class UsersClient {
  @Get('/users/:id')
  user(@Param('id') id: string): Promise<Author> {
    return remoteCall(id);
  }
}
