// Repeats an async task: the next run starts `ms` after the previous one ended, so slow
// answers never pile up. stop() ends it; now() runs it at once.

export function poller(task, ms) {
  let timer = null, stopped = false, running = null;
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (running) return running;
    running = (async () => {
      let again = true;
      try { again = (await task()) !== false; } catch (e) { console.warn(e); }
      running = null;
      if (!stopped && again) timer = setTimeout(run, ms);
    })();
    return running;
  };
  run();
  return {
    stop() { stopped = true; clearTimeout(timer); },
    now() { return run(); },
  };
}
