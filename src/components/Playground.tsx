"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC, useTRPCClient } from "../trpc/context";
import type { TaskDetails } from "../trpc/types";

type Side = "base" | "adapter";

interface Output {
  text: string;
  /** Token events received: more than one means the text came as it was drawn. */
  pieces: number;
  state: "idle" | "streaming" | "done" | "failed";
  error: string | null;
}

const IDLE: Output = { text: "", pieces: 0, state: "idle", error: null };

/**
 * The playground: one prompt, continued by the base model and by the base with the adapter (or
 * a checkpoint's), side by side, each streamed token by token as the studio's generation server
 * draws it. Same settings and seed, same text.
 */
export function Playground({ task }: { task: TaskDetails["task"] }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const client = useTRPCClient();
  const trainable = task.trainer === "builtin" || task.trainer === "hf-peft";
  const models = useQuery(
    trpc.task.models.queryOptions(
      { id: task.id },
      { enabled: trainable, refetchInterval: task.status === "training" ? 5000 : false },
    ),
  );
  const [prompt, setPrompt] = useState("### Instruction:\n");
  const [checkpoint, setCheckpoint] = useState("");
  const [temperature, setTemperature] = useState(0.8);
  const [topP, setTopP] = useState(1);
  const [maxNewTokens, setMaxNewTokens] = useState(60);
  const [seed, setSeed] = useState(0);
  const [outputs, setOutputs] = useState<Record<Side, Output>>({ base: IDLE, adapter: IDLE });
  const running = useRef<(() => void)[]>([]);

  const stopAll = () => {
    for (const stop of running.current.splice(0)) stop();
  };
  // Leaving the page ends its streams (the server cancels their generation).
  useEffect(() => {
    const streams = running.current;
    return () => {
      for (const stop of streams.splice(0)) stop();
    };
  }, []);

  const choices = models.data;
  if (!trainable || !choices || (!choices.final && choices.checkpoints.length === 0)) return null;
  const chosen = checkpoint || (choices.final ? "" : choices.checkpoints.at(-1)!);
  const update = (side: Side, change: (o: Output) => Output) =>
    setOutputs((all) => ({ ...all, [side]: change(all[side]) }));

  const generate = () => {
    stopAll();
    for (const side of ["base", "adapter"] as const) {
      update(side, () => ({ text: "", pieces: 0, state: "streaming", error: null }));
      const subscription = client.task.playground.subscribe(
        {
          id: task.id,
          checkpoint: chosen || null,
          side,
          prompt,
          settings: { temperature, topP, maxNewTokens, seed },
        },
        {
          onData: (event) => {
            if (event.kind === "token") {
              update(side, (o) => ({ ...o, text: o.text + event.text, pieces: o.pieces + 1 }));
            } else {
              update(side, (o) => ({ ...o, state: "done" }));
              subscription.unsubscribe();
            }
          },
          onError: (err) => update(side, (o) => ({ ...o, state: "failed", error: err.message })),
          // A dropped connection (a studio restart, a recycled stream) is one the browser would
          // open again, starting the generation over: a generation is asked for once.
          onConnectionStateChange: (connection) => {
            if (connection.state !== "connecting" || !connection.error) return;
            subscription.unsubscribe();
            const error = connection.error.data
              ? connection.error.message
              : t("playground.connectionLost");
            update(side, (o) => ({ ...o, state: "failed", error }));
          },
        },
      );
      running.current.push(() => subscription.unsubscribe());
    }
  };
  const streaming = outputs.base.state === "streaming" || outputs.adapter.state === "streaming";

  return (
    <section aria-labelledby="playground-title" data-testid="playground">
      <h3 id="playground-title">{t("playground.title")}</h3>
      <label className="field">
        <span>{t("playground.prompt")}</span>
        <textarea
          data-testid="playground-prompt"
          rows={3}
          value={prompt}
          onChange={(e) => setPrompt(e.target.value)}
        />
      </label>
      <div className="inline-fields">
        <label>
          {t("playground.weights")}{" "}
          <select
            data-testid="playground-checkpoint"
            value={chosen}
            onChange={(e) => setCheckpoint(e.target.value)}
          >
            {choices.final && <option value="">{t("playground.final")}</option>}
            {choices.checkpoints.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("playground.temperature")}{" "}
          <input
            type="number"
            data-testid="playground-temperature"
            min={0}
            max={5}
            step={0.1}
            value={temperature}
            onChange={(e) => setTemperature(Number(e.target.value))}
          />
        </label>
        <label>
          {t("playground.topP")}{" "}
          <input
            type="number"
            data-testid="playground-top-p"
            min={0.01}
            max={1}
            step={0.05}
            value={topP}
            onChange={(e) => setTopP(Number(e.target.value))}
          />
        </label>
        <label>
          {t("playground.maxTokens")}{" "}
          <input
            type="number"
            data-testid="playground-max-tokens"
            min={1}
            max={2000}
            value={maxNewTokens}
            onChange={(e) => setMaxNewTokens(Number(e.target.value))}
          />
        </label>
        <label>
          {t("playground.seed")}{" "}
          <input
            type="number"
            data-testid="playground-seed"
            min={0}
            value={seed}
            onChange={(e) => setSeed(Number(e.target.value))}
          />
        </label>
      </div>
      <button
        type="button"
        data-testid="playground-generate"
        disabled={streaming}
        onClick={generate}
      >
        {t("playground.generate")}
      </button>{" "}
      {streaming && (
        <button
          type="button"
          className="secondary"
          onClick={() => {
            stopAll();
            setOutputs((all) => ({
              base: { ...all.base, state: "done" },
              adapter: { ...all.adapter, state: "done" },
            }));
          }}
        >
          {t("playground.stop")}
        </button>
      )}
      <div className="playground-outputs">
        {(["base", "adapter"] as const).map((side) => (
          <div key={side} className="playground-output">
            <h4>{t(side === "base" ? "playground.base" : "playground.adapter")}</h4>
            <pre
              data-testid={`playground-${side}`}
              data-state={outputs[side].state}
              data-pieces={outputs[side].pieces}
            >
              {outputs[side].text}
            </pre>
            {outputs[side].error && (
              <p className="error-text" data-testid={`playground-${side}-error`}>
                {outputs[side].error}
              </p>
            )}
          </div>
        ))}
      </div>
    </section>
  );
}
