/** What the page tells the reader about one stream. */
export type LiveState = "connecting" | "live" | "reconnecting";

/** The callbacks of a tRPC client subscription that this loop uses. */
export interface SubscriptionHandlers<T> {
  onStarted: () => void;
  onData: (data: T) => void;
  onError: (error: unknown) => void;
  onComplete: () => void;
  onConnectionStateChange: (state: { state: "idle" | "connecting" | "pending" }) => void;
}

export interface KeepSubscribedOptions<T> {
  /** Opens one subscription; called again after each end, so it reads the latest resume id. */
  open: (handlers: SubscriptionHandlers<T>) => { unsubscribe: () => void };
  onData: (data: T) => void;
  onState: (state: LiveState) => void;
  /** Each (re)connection, including the link's own reconnects after a dropped stream. */
  onStarted?: () => void;
  retryMs?: number;
}

/**
 * Keeps a subscription open for as long as the page wants it. tRPC's SSE link reconnects by
 * itself after a network error, but a studio that shuts down gracefully ends its streams, and the
 * link treats that as the end of the subscription; this loop opens it again. Returns `stop`.
 */
export function keepSubscribed<T>(options: KeepSubscribedOptions<T>): () => void {
  const retryMs = options.retryMs ?? 1_000;
  let generation = 0;
  let current: { unsubscribe: () => void } | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let everLive = false;
  const waiting = (): LiveState => (everLive ? "reconnecting" : "connecting");

  const connect = () => {
    const mine = ++generation;
    const ours = () => !stopped && mine === generation;
    const again = () => {
      if (!ours()) return;
      generation++;
      current?.unsubscribe();
      current = null;
      options.onState(waiting());
      timer = setTimeout(connect, retryMs);
    };
    current = options.open({
      onStarted: () => {
        if (!ours()) return;
        everLive = true;
        options.onState("live");
        options.onStarted?.();
      },
      onData: (data) => {
        if (ours()) options.onData(data);
      },
      onConnectionStateChange: ({ state }) => {
        if (ours() && state === "connecting") options.onState(waiting());
      },
      onError: again,
      onComplete: again,
    });
  };

  options.onState("connecting");
  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    current?.unsubscribe();
  };
}
