import { z } from 'zod';

/**
 * The forum's own settings, typed: defaults here, overridden by FORUM_PAGE_SIZE and
 * FORUM_NOTIFY_BY_MAIL, or live from the registry's KV (`trellis config set forum pageSize 10`).
 */
export const forumSettings = z.object({
  /** Threads or replies in a page when the request does not say (`?limit=`). */
  pageSize: z.number().int().min(1).max(100).default(20),
  /** Mail the author of a thread when someone replies; off while mail is struggling, say. */
  notifyByMail: z.boolean().default(true),
});
