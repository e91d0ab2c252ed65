import { Body, Client, Get, Param, Post, remoteCall, Timeout } from '@trellis/app';
import type { Greeting, GreetingRequest } from './greetings-controller.js';

/**
 * This service's own client, as its callers use it: other services list it in their app's
 * `clients` and have it injected, and the tests call the service through it. It finds the
 * service by name through the registry; each method is a governed call (load balanced over the
 * healthy instances, retried when that is safe, timed out, traced and counted). Its methods'
 * bodies never run: `remoteCall` is there for the type checker.
 */
@Client('{{SERVICE_NAME}}')
@Timeout(2_000)
export class GreetingsClient {
  @Get('/greetings/:name')
  greeting(@Param('name') name: string): Promise<Greeting> {
    return remoteCall(name);
  }

  @Post('/greetings')
  greet(@Body() request: GreetingRequest): Promise<Greeting> {
    return remoteCall(request);
  }
}
