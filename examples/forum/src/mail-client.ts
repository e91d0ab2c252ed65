import { Body, Client, Post, remoteCall, Retry, Timeout } from '@trellis/app';

/** A mail as the forum sends it. */
export interface OutgoingMail {
  readonly toUserId: string;
  readonly from: string;
  readonly subject: string;
  readonly body: string;
}

/** The mail service as the forum calls it: the only way the forum tells someone something. */
@Client('mail')
@Timeout(3_000)
export class MailClient {
  // Retried on another instance when one is down: a mail twice is better than none here.
  @Post('/mail')
  @Retry({ maxAttempts: 3, backoffBaseMs: 20 })
  send(@Body() mail: OutgoingMail): Promise<{ mail: { id: string }; servedBy: string }> {
    return remoteCall(mail);
  }
}
