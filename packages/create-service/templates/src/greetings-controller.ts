import { z } from 'zod';
import { Body, Controller, Get, Param, Post } from '@trellis/app';

/** A greeting as the service answers it. */
export interface Greeting {
  readonly text: string;
}

// Letters, spaces, apostrophes and hyphens: "Ada", "Grace Hopper", "Jean-Luc".
const name = z
  .string()
  .max(64)
  .regex(/^\p{L}[\p{L} '-]*$/u, "must be a name: letters, spaces, ' and -");

/** What `POST /greetings` accepts: who to greet, and how (Hello unless given). */
export const greetingRequest = z.strictObject({
  name,
  salutation: z.string().min(1).max(32).default('Hello'),
});

/** A request as a caller writes it (the salutation may be left out). */
export type GreetingRequest = z.input<typeof greetingRequest>;

/**
 * The greetings resource: `GET /greetings/:name` and `POST /greetings`. Each parameter is checked
 * by its zod schema before the method runs; a bad one is answered 400 naming it (`params.name`,
 * `body.name`), and the method never runs. What a method returns is sent as JSON.
 */
@Controller('/greetings')
export class GreetingsController {
  @Get('/:name')
  one(@Param('name', name) who: string): Greeting {
    return { text: `Hello, ${who}!` };
  }

  @Post()
  create(@Body(greetingRequest) request: z.output<typeof greetingRequest>): Greeting {
    return { text: `${request.salutation}, ${request.name}!` };
  }
}
