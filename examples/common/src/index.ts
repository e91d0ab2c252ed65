export { databaseFile, DataDirError, openDatabase } from './database.js';
export type { SqliteDatabase } from './database.js';
export { servePage } from './page-routes.js';
