import { log } from '../log.js';

/**
 * The one place that handles SIGTERM, SIGINT and SIGHUP. The launcher is PID 1 in the container, where Node
 * installs no default handlers, so without this `docker stop` would always end in SIGKILL.
 * The first signal calls onStop; later ones only say that a stop is under way.
 */
export function onStopSignal(onStop: (signal: NodeJS.Signals) => void): () => void {
  let seen = false;
  const handler = (signal: NodeJS.Signals) => {
    if (seen) {
      log.info(`${signal}: already shutting down`);
      return;
    }
    seen = true;
    onStop(signal);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
