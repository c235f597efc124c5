"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskDetails } from "../trpc/types";
import { type GenerationAsk, PlaygroundColumn, type PlaygroundSide } from "./PlaygroundColumn";

const SIDES = ["base", "adapter"] as const;

/** One click of Generate: what both sides continue, and whether the reader stopped it. */
interface Generation {
  n: number;
  ask: GenerationAsk;
  stopped: boolean;
  ended: PlaygroundSide[];
}

/**
 * The playground: one prompt, continued by the base model and by the base with the adapter (or
 * a checkpoint's), side by side, each streamed token by token as the studio's generation server
 * draws it. Same settings and seed, same text.
 */
export function Playground({ task }: { task: TaskDetails["task"] }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
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
  const [generation, setGeneration] = useState<Generation | null>(null);

  const choices = models.data;
  if (!trainable || !choices || (!choices.final && choices.checkpoints.length === 0)) return null;
  const chosen = checkpoint || (choices.final ? "" : choices.checkpoints.at(-1)!);

  const generate = () =>
    setGeneration((last) => ({
      n: (last?.n ?? 0) + 1,
      ask: {
        id: task.id,
        checkpoint: chosen || null,
        prompt,
        settings: { temperature, topP, maxNewTokens, seed },
      },
      stopped: false,
      ended: [],
    }));
  const ended = (n: number, side: PlaygroundSide) =>
    setGeneration((g) =>
      g?.n === n && !g.ended.includes(side) ? { ...g, ended: [...g.ended, side] } : g,
    );
  const streaming =
    generation !== null && !generation.stopped && generation.ended.length < SIDES.length;

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
          onClick={() => setGeneration((g) => g && { ...g, stopped: true })}
        >
          {t("playground.stop")}
        </button>
      )}
      <div className="playground-outputs">
        {SIDES.map((side) => (
          <PlaygroundColumn
            key={`${side}-${generation?.n ?? 0}`}
            side={side}
            ask={generation?.ask ?? null}
            stopped={generation?.stopped ?? false}
            onEnd={(side) => ended(generation?.n ?? 0, side)}
          />
        ))}
      </div>
    </section>
  );
}
