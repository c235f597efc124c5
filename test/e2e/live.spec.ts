import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, type Page, type TestInfo, test } from "@playwright/test";
import { CliStudio } from "./cli-studio";

const FIXTURE = join(import.meta.dirname, "../fixtures/e2e/timed-lines.mjs");

test.describe.configure({ mode: "serial" });
test.setTimeout(120_000);

let studio: CliStudio;
test.beforeAll(async () => {
  studio = await CliStudio.start();
});
test.afterAll(async () => {
  await studio?.dispose();
});

function fixtureCommand(lines: number, rate: number, ...extra: string[]): string[] {
  return [
    process.execPath,
    FIXTURE,
    "--task-dir",
    ".",
    "--lines",
    String(lines),
    "--rate",
    String(rate),
    ...extra,
  ];
}

async function createFixtureTask(name: string, lines: number, rate: number, ...extra: string[]) {
  return studio.client.task.create.mutate({
    name,
    model: "fixture",
    dataset: "sample",
    trainer: "command",
    command: fixtureCommand(lines, rate, ...extra),
  });
}

/** Opens the page with the log view's test hook on, and records every state the indicators show. */
async function openPage(page: Page, query = "") {
  await page.addInitScript(() => {
    window.__studioLogHook = true;
    const seen: string[] = [];
    (window as unknown as { __liveStates: string[] }).__liveStates = seen;
    new MutationObserver(() => {
      for (const id of ["live-status", "log-live-status"]) {
        const state = document.querySelector(`[data-testid="${id}"]`)?.getAttribute("data-status");
        if (state && seen.at(-1) !== `${id}:${state}`) seen.push(`${id}:${state}`);
      }
    }).observe(document, { subtree: true, attributes: true, childList: true });
  });
  await page.goto(`${studio.url}/finetune${query}`);
}

async function hookLines(page: Page) {
  return page.evaluate(() => window.__studioLog?.lines ?? []);
}

async function liveStates(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __liveStates: string[] }).__liveStates);
}

async function shot(page: Page, testInfo: TestInfo, name: string) {
  const path = testInfo.outputPath(`${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await testInfo.attach(name, { path, contentType: "image/png" });
}

async function shownStep(page: Page): Promise<number> {
  return Number((await page.getByTestId("progress-step").getAttribute("data-step")) || 0);
}

/** Every line of training.log, once, in order: what the page received equals the file. */
async function expectLogMatchesFile(page: Page, taskId: string) {
  const shown = await hookLines(page);
  const file = studio.trainingLog(taskId);
  expect(shown.map((line) => line.text)).toEqual(file);
  const offsets = shown.map((line) => line.offset);
  expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  expect(new Set(offsets).size).toBe(offsets.length);
}

async function restartScenario(page: Page, testInfo: TestInfo, how: "restart" | "kill") {
  const name = `live-${how}-${Date.now()}`;
  // The trainer holds before its last line until the test is done with the restart.
  const until = join(studio.home, `${name}.until`);
  await openPage(page);
  // created from the page's form, as a person would
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Dataset", { exact: true }).fill("sample");
  await page.getByLabel("Trainer").selectOption("command");
  await page
    .getByLabel("Command (one argument per line)")
    .fill(fixtureCommand(600, 40, "--until", until).join("\n"));
  await page.getByTestId("create-task-submit").click();
  const detail = page.getByTestId("task-detail");
  await expect(detail.getByRole("heading", { name })).toBeVisible();
  const taskId = (await detail.getAttribute("data-task-id"))!;
  await page.getByTestId("action-start").click();

  const badge = detail.getByTestId("status-badge");
  await expect(badge).toHaveAttribute("data-status", "training");
  await expect(page.getByTestId("live-status")).toHaveAttribute("data-status", "live");
  await expect.poll(async () => (await hookLines(page)).length).toBeGreaterThan(40);
  const pidBefore = await studio.trainerPid(taskId);
  expect(pidBefore).not.toBeNull();
  await expect.poll(() => shownStep(page)).toBeGreaterThan(0);
  const stepBefore = await shownStep(page);
  await shot(page, testInfo, `${how}-training-before`);

  const studioPid = studio.pid();
  if (how === "restart") {
    await studio.cli("restart");
  } else {
    await studio.kill();
    await expect(page.getByTestId("log-live-status")).toHaveAttribute(
      "data-status",
      "reconnecting",
    );
    await shot(page, testInfo, `${how}-reconnecting`);
    await studio.cli("start");
  }
  expect(studio.pid()).not.toBe(studioPid);

  // back without a click
  await expect(page.getByTestId("live-status")).toHaveAttribute("data-status", "live", {
    timeout: 20_000,
  });
  await expect(page.getByTestId("log-live-status")).toHaveAttribute("data-status", "live");
  const states = await liveStates(page);
  expect(states).toContain("live-status:reconnecting");
  expect(states).toContain("log-live-status:reconnecting");
  expect(await studio.trainerPid(taskId)).toBe(pidBefore);
  await expect(page.getByTestId("restart-banner")).toBeVisible({ timeout: 20_000 });
  await expect(detail.locator('[data-event-type="recovered"]')).toContainText(`pid ${pidBefore}`);
  await expect.poll(() => shownStep(page), { timeout: 10_000 }).toBeGreaterThan(stepBefore);
  await shot(page, testInfo, `${how}-after`);

  writeFileSync(until, "");
  await expect(badge).toHaveAttribute("data-status", "completed", { timeout: 60_000 });
  await expect.poll(async () => (await hookLines(page)).length).toBe(600);
  await expectLogMatchesFile(page, taskId);
  await expect(page.getByTestId("progress-bar")).toHaveAttribute("data-percent", "100");
  await expect(page.getByTestId("loss-chart")).toBeVisible();

  const link = page.getByTestId("downloads").locator('a[data-file="adapter_config.json"]');
  await expect(link).toBeVisible();
  const download = await page.request.get(`${studio.url}${await link.getAttribute("href")}`);
  expect(download.status()).toBe(200);
  expect(await download.json()).toMatchObject({ peft_type: "LORA" });
  const weights = await page.request.get(
    `${studio.url}/api/tasks/${taskId}/files/adapter_model.safetensors`,
  );
  expect(weights.status()).toBe(200);
  await shot(page, testInfo, `${how}-completed`);
}

test("a task keeps training through `studio restart`; the page reconnects and shows every line once", async ({
  page,
}, testInfo) => {
  await restartScenario(page, testInfo, "restart");
});

test("the same through a SIGKILL of the studio and a fresh start", async ({ page }, testInfo) => {
  await restartScenario(page, testInfo, "kill");
});

test("a reload shows the recent tail and continues live after it", async ({ page }) => {
  const task = await createFixtureTask(`live-reload-${Date.now()}`, 300, 60);
  await studio.client.task.start.mutate({ id: task.id });
  await openPage(page, `?task=${task.id}`);
  await expect.poll(async () => (await hookLines(page)).length).toBeGreaterThan(50);
  await page.reload();
  await expect(page.getByTestId("status-badge").first()).toBeVisible();
  await expect(page.getByTestId("task-detail").getByTestId("status-badge")).toHaveAttribute(
    "data-status",
    "completed",
    { timeout: 30_000 },
  );
  await expect.poll(async () => (await hookLines(page)).length).toBe(300);
  await expectLogMatchesFile(page, task.id);
});

test("pause, resume and cancel from the buttons; a browser notification says it ended", async ({
  page,
}, testInfo) => {
  page.on("dialog", (dialog) => void dialog.accept());
  // The browser's permission is granted; each notification the page shows is recorded.
  await page.context().grantPermissions(["notifications"]);
  await page.addInitScript(() => {
    const shown: { title: string; body?: string; tag?: string }[] = [];
    (window as unknown as { __notifications: typeof shown }).__notifications = shown;
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title: string, options?: NotificationOptions) {
        shown.push({ title, body: options?.body, tag: options?.tag });
        super(title, options);
      }
    } as typeof Notification;
  });
  const task = await createFixtureTask(`live-actions-${Date.now()}`, 3000, 50);
  await openPage(page, `?task=${task.id}`);
  const toggle = page.getByTestId("notify-toggle");
  await expect(toggle).toHaveAttribute("data-state", "off");
  await toggle.click();
  await expect(toggle).toHaveAttribute("data-state", "on");
  const detail = page.getByTestId("task-detail");
  const badge = detail.getByTestId("status-badge");
  await detail.getByTestId("action-start").click();
  await expect(badge).toHaveAttribute("data-status", "training");
  await expect.poll(async () => (await hookLines(page)).length).toBeGreaterThan(10);

  await detail.getByTestId("action-pause").click();
  await expect(badge).toHaveAttribute("data-status", "paused");
  await expect(detail.getByTestId("action-resume")).toBeEnabled();
  await expect(detail.getByTestId("action-pause")).toBeDisabled();
  const whilePaused = (await hookLines(page)).length;
  await page.waitForTimeout(1_000);
  expect((await hookLines(page)).length).toBeLessThanOrEqual(whilePaused + 1);
  await shot(page, testInfo, "paused");

  await detail.getByTestId("action-resume").click();
  await expect(badge).toHaveAttribute("data-status", "training");
  await expect.poll(async () => (await hookLines(page)).length).toBeGreaterThan(whilePaused + 20);

  await detail.getByTestId("action-cancel").click();
  await expect(badge).toHaveAttribute("data-status", "cancelled", { timeout: 20_000 });
  await expect(detail.getByTestId("action-cancel")).toBeDisabled();
  await expect(detail.getByTestId("action-retry")).toBeEnabled();
  // Start, pause and resume notify nothing; the end does, once.
  await expect
    .poll(() =>
      page.evaluate(() => (window as unknown as { __notifications: unknown[] }).__notifications),
    )
    .toEqual([
      {
        title: `${task.name} was cancelled`,
        body: expect.stringMatching(/^cancelled: /),
        tag: expect.stringMatching(/^task-event-\d+$/),
      },
    ]);
  await shot(page, testInfo, "cancelled");
  await expectLogMatchesFile(page, task.id);
});

/** Nothing on the page is wider than the window: no sideways scrolling of the whole page. */
async function expectNoOverflow(page: Page) {
  const widths = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
  }));
  expect(widths.page).toBeLessThanOrEqual(widths.window);
}

test("the loss chart keeps up with the progress numbers at 1440 and 390 px; a command's finished task offers only its log", async ({
  page,
}, testInfo) => {
  const task = await createFixtureTask(`chart-${Date.now()}`, 360, 40, "--no-adapter");
  await page.setViewportSize({ width: 1440, height: 900 });
  await openPage(page, `?task=${task.id}`);
  await page.getByTestId("action-start").click();
  const detail = page.getByTestId("task-detail");
  const chart = page.getByTestId("loss-chart");
  const chartStep = async () => Number((await chart.getAttribute("data-last-step")) ?? 0);
  await expect(chart).toBeVisible();
  // While it trains (9 s in all), at each width: 40 steps after what the chart shows now, the
  // step the numbers show reaches the chart within its refetch interval (2 s), long before the end.
  for (const width of [1440, 390]) {
    await page.setViewportSize({ width, height: 900 });
    const before = await chartStep();
    await expect.poll(() => shownStep(page)).toBeGreaterThanOrEqual(before + 40);
    const step = await shownStep(page);
    await expect.poll(chartStep, { timeout: 3_000 }).toBeGreaterThanOrEqual(step);
    await expect(detail.getByTestId("status-badge")).toHaveAttribute("data-status", "training");
    await expectNoOverflow(page);
    await shot(page, testInfo, `chart-${width}-training`);
  }

  await expect(detail.getByTestId("status-badge")).toHaveAttribute("data-status", "completed", {
    timeout: 20_000,
  });
  await expect.poll(chartStep).toBe(360);
  await expect(page.getByTestId("progress-step")).toHaveAttribute("data-step", "360");
  // it wrote no adapter: the log alone is offered, and it is no longer live; "finished" is no reason
  await expect(page.getByTestId("downloads").locator("a")).toHaveText(["training.log"]);
  await expect(page.getByTestId("log-live-status")).toHaveAttribute("data-status", "ended");
  await expect(detail.getByTestId("status-reason")).toHaveCount(0);
  await expectNoOverflow(page);
  await shot(page, testInfo, "chart-390-completed");
});

// How fast lines reach the page is measured by `npm run bench:latency`, not here.
test("at 5,000 lines/s every line reaches the page once and in order; the view keeps the last 20,000", async ({
  page,
}) => {
  const total = 25_000;
  const task = await createFixtureTask(`fast-${Date.now()}`, total, 5_000);
  await openPage(page, `?task=${task.id}`);
  await expect(page.getByTestId("log-live-status")).toHaveAttribute("data-status", "live");
  await page.getByTestId("action-start").click();
  await expect.poll(async () => (await hookLines(page)).length, { timeout: 60_000 }).toBe(total);
  const numbers = (await hookLines(page)).map((line) => Number(/ n=(\d+) /.exec(line.text)?.[1]));
  expect(numbers).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  await expect(page.getByTestId("log-count")).toHaveAttribute("data-count", "20000");
});
