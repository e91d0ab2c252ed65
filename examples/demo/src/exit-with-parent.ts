// Loaded with `node --import` into every process the launcher starts. The launcher holds an IPC
// channel to each; when the launcher dies, even by SIGKILL, the channel closes and the service
// stops itself as if told SIGTERM (deregistering and draining), instead of living on orphaned.
if (process.channel !== undefined) {
  // The channel alone must not keep a service alive once it has shut down.
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

export {};
