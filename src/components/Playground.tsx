"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskDetails } from "../trpc/types";
import { ModelRunForm } from "./ModelRunForm";
import { chosenWeights } from "./model-choice";
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
  const chosen = choices ? chosenWeights(choices, checkpoint) : null;
  if (!trainable || !choices || chosen === null) return null;
  // label key, test id, value, setter, bounds
  const numberSettings = [
    ["temperature", "temperature", temperature, setTemperature, { min: 0, max: 5, step: 0.1 }],
    ["topP", "top-p", topP, setTopP, { min: 0.01, max: 1, step: 0.05 }],
    ["maxTokens", "max-tokens", maxNewTokens, setMaxNewTokens, { min: 1, max: 2000 }],
    ["seed", "seed", seed, setSeed, { min: 0 }],
  ] as const;

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
      <ModelRunForm
        name="playground"
        choices={choices}
        weights={chosen}
        onWeights={setCheckpoint}
        settings={numberSettings.map(([key, testId, value, set, bounds]) => ({
          label: t(`playground.${key}`),
          control: (
            <input
              type="number"
              data-testid={`playground-${testId}`}
              {...bounds}
              value={value}
              onChange={(e) => set(Number(e.target.value))}
            />
          ),
        }))}
        run={{
          label: t("playground.generate"),
          testId: "playground-generate",
          disabled: streaming,
          onClick: generate,
        }}
        stop={
          streaming
            ? {
                label: t("playground.stop"),
                onClick: () => setGeneration((g) => g && { ...g, stopped: true }),
              }
            : null
        }
      />
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
