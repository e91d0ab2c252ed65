import { inject } from 'inversify';
import { z } from 'zod';
import { AppTokens, Controller, Get, Param, Query, TrellisApp } from '@trellis/app';
import { ChatRooms, roomName, type ChatUser } from './chat-rooms.js';
import { ChatStore, type ChatMessage } from './chat-store.js';

/** The chat's HTTP side: history and presence. Messages themselves go over the room's socket. */
@Controller('/rooms')
export class ChatController {
  constructor(
    @inject(AppTokens.app) private readonly app: TrellisApp,
    @inject(ChatStore) private readonly store: ChatStore,
    @inject(ChatRooms) private readonly rooms: ChatRooms,
  ) {}

  /** Rooms with someone in them on this instance. */
  @Get()
  list(): { rooms: Array<{ room: string; users: number }>; servedBy: string | undefined } {
    return { rooms: this.rooms.active(), servedBy: this.app.instance?.id };
  }

  /** The latest messages (before `before`), oldest first; `next` is the `before` of older ones. */
  @Get('/:room/messages')
  messages(
    @Param('room', roomName) room: string,
    @Query('before', z.coerce.number().int().min(1).optional()) before: number | undefined,
    @Query('limit', z.coerce.number().int().min(1).max(100).default(50)) limit: number,
  ): { messages: ChatMessage[]; next: string | undefined; servedBy: string | undefined } {
    const messages = this.store.history(room, before ?? Number.MAX_SAFE_INTEGER, limit);
    return {
      messages,
      next: messages.length === limit ? messages[0]?.id : undefined,
      servedBy: this.app.instance?.id,
    };
  }

  /** Who is in the room on this instance. */
  @Get('/:room/presence')
  presence(@Param('room', roomName) room: string): { users: ChatUser[]; servedBy: string | undefined } {
    return { users: this.rooms.presence(room), servedBy: this.app.instance?.id };
  }
}
