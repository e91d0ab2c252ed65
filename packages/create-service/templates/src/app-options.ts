import type { AppOptions } from '@trellis/app';
import { GreetingsController } from './greetings-controller.js';

/**
 * The service's options in code: its name (what it registers under, and what its callers ask
 * for) and its controllers. main.ts reads the config file and the environment over them; the
 * tests add an in-memory registry.
 */
export const appOptions = {
  service: '{{SERVICE_NAME}}',
  controllers: [GreetingsController],
} satisfies AppOptions;
