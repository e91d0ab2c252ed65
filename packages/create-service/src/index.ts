export { createService } from './create-service.js';
export type { CreatedService, CreateServiceOptions } from './create-service.js';
