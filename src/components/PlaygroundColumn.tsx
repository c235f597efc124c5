"use client";

import { skipToken } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { RouterInputs } from "../trpc/types";

export type PlaygroundSide = RouterInputs["task"]["playground"]["side"];

/** What one generation asks both sides for: the same prompt, weights and settings. */
export type GenerationAsk = Omit<RouterInputs["task"]["playground"], "side">;

interface Output {
  text: string;
  /** Token events received: more than one means the text came as it was drawn. */
  pieces: number;
  state: "idle" | "streaming" | "done" | "failed";
  error: string | null;
}

const IDLE: Output = { text: "", pieces: 0, state: "idle", error: null };
const STARTING: Output = { ...IDLE, state: "streaming" };

/**
 * One side of the playground: the continuation `side` draws for `ask`, streamed token by token
 * from the studio's generation server. Mounted afresh for each generation (ask null: none yet);
 * `stopped` ends the stream, and `onEnd` hears when it ended by itself (done, or failed).
 */
export function PlaygroundColumn({
  side,
  ask,
  stopped,
  onEnd,
}: {
  side: PlaygroundSide;
  ask: GenerationAsk | null;
  stopped: boolean;
  onEnd: (side: PlaygroundSide) => void;
}) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const [output, setOutput] = useState<Output>(ask ? STARTING : IDLE);
  const streaming = output.state === "streaming" && !stopped;
  // Late events of a stream that ended here change nothing.
  const update = (change: (o: Output) => Output) =>
    setOutput((o) => (o.state === "streaming" ? change(o) : o));
  const end = (change: (o: Output) => Output) => {
    update(change);
    onEnd(side);
  };

  useSubscription(
    trpc.task.playground.subscriptionOptions(ask && streaming ? { ...ask, side } : skipToken, {
      onData: (event) => {
        if (event.kind === "token") {
          update((o) => ({ ...o, text: o.text + event.text, pieces: o.pieces + 1 }));
        } else {
          end((o) => ({ ...o, state: "done" }));
        }
      },
      onError: (err) => end((o) => ({ ...o, state: "failed", error: err.message })),
      // A dropped connection (a studio restart, a recycled stream) is one the browser would open
      // again, starting the generation over: a generation is asked for once, so it ends here.
      onConnectionStateChange: (connection) => {
        if (connection.state !== "connecting" || !connection.error) return;
        const error = connection.error.data
          ? connection.error.message
          : t("playground.connectionLost");
        end((o) => ({ ...o, state: "failed", error }));
      },
    }),
  );

  return (
    <div className="playground-output">
      <h4>{t(side === "base" ? "playground.base" : "playground.adapter")}</h4>
      <pre
        data-testid={`playground-${side}`}
        data-state={stopped && output.state === "streaming" ? "done" : output.state}
        data-pieces={output.pieces}
      >
        {output.text}
      </pre>
      {output.error && (
        <p className="error-text" data-testid={`playground-${side}-error`}>
          {output.error}
        </p>
      )}
    </div>
  );
}
