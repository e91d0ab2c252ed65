import { Body, Client, Header, Post, remoteCall, Retry, Timeout } from '@trellis/app';

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
  /**
   * Sends one mail. The key names the event it tells of (a reply), so that mail stores it once:
   * with it the retry stage may send the POST again, on another instance, when an attempt's
   * answer is lost (an instance killed mid-call).
   */
  @Post('/mail')
  @Retry({ maxAttempts: 3, backoffBaseMs: 20 })
  send(
    @Body() mail: OutgoingMail,
    @Header('idempotency-key') key: string,
  ): Promise<{ mail: { id: string }; repeated: boolean; servedBy: string }> {
    return remoteCall(mail, key);
  }
}
