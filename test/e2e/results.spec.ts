import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { CliStudio } from "./cli-studio";

const LINES = join(import.meta.dirname, "../fixtures/trainers/lines.mjs");

test.setTimeout(90_000);

let studio: CliStudio;
test.beforeAll(async () => {
  // Two runs at once; their runners sample the machine every 300 ms.
  studio = await CliStudio.start({ STUDIO_CONCURRENCY: "2", STUDIO_SYSTEM_SAMPLE_MS: "300" });
});
test.afterAll(async () => {
  await studio?.dispose();
});

async function finishedRun(name: string, learningRate: number) {
  const task = await studio.client.task.create.mutate({
    name,
    model: "fixture",
    dataset: "sample",
    trainer: "command",
    command: [process.execPath, LINES, "--task-dir", ".", "--lines", "30", "--interval-ms", "60"],
    hyperparameters: { learningRate },
  });
  await studio.client.task.start.mutate({ id: task.id });
  return task.id;
}

test("two finished runs side by side: curves, figures, the settings that differ, CSV; and each run's machine use", async ({
  page,
}) => {
  const ids = [await finishedRun("slow lr", 1e-4), await finishedRun("fast lr", 3e-4)];
  await expect
    .poll(
      async () =>
        Promise.all(
          ids.map(async (id) => (await studio.client.task.get.query({ id })).task.status),
        ),
      { timeout: 30_000 },
    )
    .toEqual(["completed", "completed"]);

  await page.goto(`${studio.url}/compare?ids=${ids.join(",")}`);
  await expect(page.getByTestId("compare-chart")).toHaveAttribute("data-points", "30");
  // drawn: each run's loss and eval curves
  await expect(page.getByTestId("compare-chart").locator(".recharts-line")).toHaveCount(4);
  const figures = page.getByTestId("compare-figures").locator("tbody tr");
  await expect(figures).toHaveCount(2);
  // Each fixture run reports loss 1/step for steps 1..30.
  await expect(figures.nth(0)).toContainText("slow lr");
  await expect(figures.nth(0).locator("td").nth(2)).toHaveText("30");
  await expect(figures.nth(0).locator("td").nth(3)).toHaveText("0.03333");
  const differing = page.getByTestId("compare-settings").locator("tbody tr.differs");
  await expect(differing).toHaveCount(1);
  await expect(differing).toContainText(/learningRate\s*0\.0001\s*0\.0003/);

  await page.getByTestId("compare-by").selectOption("time");
  await expect(page.getByTestId("compare-chart")).not.toHaveAttribute("data-points", "0");

  const download = page.waitForEvent("download");
  await page.getByTestId("compare-csv").click();
  const csv = readFileSync(await (await download).path(), "utf8")
    .trim()
    .split("\r\n");
  expect(csv[0]).toBe("task_id,task_name,attempt,step,loss,eval_loss,at");
  expect(csv).toHaveLength(61);
  expect(csv[1]).toMatch(new RegExp(`^${ids[0]},slow lr,1,1,1,,\\d{4}-`));

  // Unticking a run leaves one: nothing to compare.
  // The box follows the URL: a click changes the URL, and the box with it.
  await page.getByRole("checkbox", { name: /fast lr/ }).click();
  await expect(page.getByRole("checkbox", { name: /fast lr/ })).not.toBeChecked();
  await expect(page.getByTestId("comparison")).toHaveCount(0);

  // The run's own page charts what its trainer used, as the runner sampled it.
  await page.goto(`${studio.url}/finetune?task=${ids[0]}`);
  await expect(page.getByTestId("system-chart")).toBeVisible();
  // percent (CPU, GPUs) and memory, each on its own axis
  await expect(page.getByTestId("system-chart").locator(".recharts-yAxis")).toHaveCount(2);
  expect(
    Number(await page.getByTestId("system-chart").getAttribute("data-points")),
  ).toBeGreaterThan(1);
});
