import { Client, Get, Query, remoteCall, Timeout } from '@trellis/app';

/** A user as the users service answers a look-up by name. */
export interface NamedUser {
  readonly id: string;
  readonly name: string;
}

/** The users service as the chat calls it, to find who a mention (`@ada`) names. */
@Client('users')
@Timeout(2_000)
export class UsersClient {
  /** The users of these names; unknown names are left out. */
  @Get('/users')
  byNames(@Query('name') names: readonly string[]): Promise<{ users: NamedUser[]; servedBy: string }> {
    return remoteCall(names);
  }
}
