import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { createClient } from "../../src/cli/client";
import { loadBaseModel } from "../../src/trainers/builtin/base-model";

const ROWS = readFileSync(join(import.meta.dirname, "../fixtures/builtin/alpaca-200.jsonl"), "utf8")
  .trim()
  .split("\n");

test.setTimeout(240_000);

// The studio the page tests run against (playwright.config's webServer), driven through its API.
const client = createClient(`http://127.0.0.1:${process.env.E2E_STUDIO_PORT}`);

async function upload(fileName: string, rows: string[]) {
  const dataset = await client.dataset.upload.mutate({
    fileName,
    contentBase64: Buffer.from(`${rows.join("\n")}\n`).toString("base64"),
  });
  return dataset.id;
}

test("a tiny built-in run: the playground streams base and adapter side by side, an evaluation's figures appear, and an evaluation set scores each checkpoint; the merged model exported from the page loads again", async ({
  page,
}, testInfo) => {
  const train = await upload("train.jsonl", ROWS.slice(0, 16));
  const heldOut = await upload("held-out.jsonl", ROWS.slice(100, 103));
  const task = await client.task.create.mutate({
    name: "tiny playground",
    model: "builtin:tiny",
    dataset: train,
    trainer: "builtin",
    hyperparameters: {
      epochs: 1,
      batchSize: 4,
      maxLength: 40,
      loraRank: 4,
      learningRate: 0.03,
      saveSteps: 2,
      evalSteps: 100,
    },
  });
  await client.task.start.mutate({ id: task.id });
  await expect
    .poll(async () => (await client.task.get.query({ id: task.id })).task.status, {
      timeout: 120_000,
    })
    .toBe("completed");

  await page.goto(`/finetune?task=${task.id}`);
  const playground = page.getByTestId("playground");
  await expect(playground).toBeVisible();
  await expect(page.getByTestId("playground-checkpoint").locator("option")).toHaveText([
    "final adapter",
    "step-2",
    "step-4",
  ]);
  await page
    .getByTestId("playground-prompt")
    .fill("### Instruction:\nWhat color is a banana?\n### Response:\n");
  // Sampled with one seed: only the two models differ.
  await page.getByTestId("playground-temperature").fill("1");
  await page.getByTestId("playground-max-tokens").fill("24");
  await page.getByTestId("playground-generate").click();
  const base = page.getByTestId("playground-base");
  const adapter = page.getByTestId("playground-adapter");
  await expect(base).toHaveAttribute("data-state", "done", { timeout: 60_000 });
  await expect(adapter).toHaveAttribute("data-state", "done", { timeout: 60_000 });
  // Token by token: many events reached the page, not one text at the end.
  expect(Number(await base.getAttribute("data-pieces"))).toBeGreaterThan(1);
  expect(Number(await adapter.getAttribute("data-pieces"))).toBeGreaterThan(1);
  const baseText = await base.textContent();
  expect(baseText).not.toBe("");
  expect(await adapter.textContent()).not.toBe(baseText);

  // The same seed again: the same text.
  await page.getByTestId("playground-generate").click();
  await expect(adapter).toHaveAttribute("data-state", "done", { timeout: 60_000 });
  await expect(base).toHaveAttribute("data-state", "done", { timeout: 60_000 });
  expect(await base.textContent()).toBe(baseText);

  // A dropped connection is not opened again as the browser would (that would ask for the
  // generation again): each side ends, saying why.
  await page.context().setOffline(true);
  await page.getByTestId("playground-generate").click();
  for (const side of ["base", "adapter"]) {
    await expect(page.getByTestId(`playground-${side}-error`)).toHaveText(
      "The connection to the studio was lost; generate again.",
    );
    await expect(page.getByTestId(`playground-${side}`)).toHaveAttribute("data-state", "failed");
  }
  await page.context().setOffline(false);

  // A prompt the model cannot take: an error on each side, nothing else touched.
  await page.getByTestId("playground-prompt").fill("x".repeat(300));
  await page.getByTestId("playground-generate").click();
  await expect(page.getByTestId("playground-adapter-error")).toContainText(
    "the prompt is 300 bytes; this model reads at most 254 bytes of prompt",
  );

  await page.getByTestId("evaluation-dataset").selectOption(heldOut);
  await page.getByTestId("evaluation-checkpoint").selectOption("step-4");
  await page.getByTestId("evaluation-start").click();
  const row = page.getByTestId("evaluation-row");
  await expect(row).toHaveAttribute("data-state", "done", { timeout: 90_000 });
  await expect(row).toContainText("checkpoints/step-4");
  await expect(row).toContainText("held-out.jsonl");
  await expect(row.getByTestId("evaluation-loss")).toHaveText(/^\d+\.\d{3} \(base \d+\.\d{3}\)$/);
  await expect(row).toContainText(/\d\/3/);

  // An evaluation set attached from the page: both checkpoints scored, shown by step.
  await page.getByTestId("evaluation-set-dataset").selectOption(heldOut);
  await page.getByTestId("evaluation-set-attach").click();
  await expect(page.getByTestId("evaluation-set-name")).toContainText("held-out.jsonl");
  const scores = page.getByTestId("evaluation-score");
  await expect(scores).toHaveCount(2, { timeout: 30_000 });
  await expect(scores.nth(0)).toHaveAttribute("data-step", "2");
  await expect(scores.nth(1)).toHaveAttribute("data-step", "4");
  for (const score of [scores.nth(0), scores.nth(1)]) {
    await expect(score).toHaveAttribute("data-state", "done", { timeout: 90_000 });
    await expect(score.getByTestId("evaluation-score-loss")).toHaveText(
      /^\d+\.\d{3} \(base \d+\.\d{3}\)$/,
    );
  }
  // The manual evaluation stays in its own table.
  await expect(page.getByTestId("evaluation-row")).toHaveCount(1);
  await page.getByTestId("evaluation-set-detach").click();
  await expect(page.getByTestId("evaluation-set-attach")).toBeVisible();

  // Exported from the page: the merged model's files are listed and served, and the studio's own
  // loader takes the downloaded model as a base model of the same shape.
  await page.getByTestId("action-export").click();
  const files = page.getByTestId("export-files").locator("a");
  await expect(files).toHaveText(["config.json", "model.safetensors", "provenance.json"], {
    timeout: 60_000,
  });
  const served = await page.request.get(
    (await files.filter({ hasText: "model.safetensors" }).getAttribute("href"))!,
  );
  expect(served.status()).toBe(200);
  mkdirSync(testInfo.outputDir, { recursive: true });
  const downloaded = testInfo.outputPath("merged.safetensors");
  writeFileSync(downloaded, await served.body());
  const merged = await loadBaseModel(downloaded);
  expect(merged.config).toEqual((await loadBaseModel(task.model)).config);
});
