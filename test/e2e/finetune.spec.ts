import { expect, type Locator, type Page, test } from "@playwright/test";

/** How many tasks the page lists right now, read from the page once the list has loaded. */
async function shownTaskCount(page: Page): Promise<number> {
  const counter = page.getByTestId("task-count");
  await expect(counter).toBeVisible();
  await expect(page.getByText("Loading…")).toHaveCount(0);
  return Number(await counter.getAttribute("data-count"));
}

/** The total in the "All" filter chip: every task the studio has, not only the loaded page. */
async function studioTaskTotal(page: Page): Promise<number> {
  const chip = page.getByTestId("filter-all");
  await expect(chip).toHaveAttribute("data-count", /^\d+$/);
  return Number(await chip.getAttribute("data-count"));
}

/** Nothing on the page is wider than the window: no sideways scrolling of the whole page. */
async function expectNoOverflow(page: Page) {
  const widths = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    header: document.querySelector(".app-header")?.getBoundingClientRect().width,
    window: window.innerWidth,
  }));
  expect(widths.page).toBeLessThanOrEqual(widths.window);
  expect(widths.header).toBe(widths.window);
}

/** The stylesheet's muted text colour (--muted): what every disabled button is drawn in. */
const MUTED = "rgb(102, 112, 133)";

/** Disabled, and drawn so: muted text, no accent or danger colour, the not-allowed cursor. */
async function expectLooksDisabled(button: Locator) {
  await expect(button).toBeDisabled();
  await expect(button).toHaveCSS("color", MUTED);
  await expect(button).toHaveCSS("cursor", "not-allowed");
}

async function expectLooksEnabled(button: Locator) {
  await expect(button).toBeEnabled();
  await expect(button).not.toHaveCSS("color", MUTED);
  await expect(button).toHaveCSS("cursor", "pointer");
}

for (const width of [1440, 390]) {
  test.describe(`at ${width} px`, () => {
    test.use({ viewport: { width, height: 900 } });

    test("a field the server refuses is marked there; disabled buttons of every kind look disabled; nothing is wider than the window", async ({
      page,
    }, testInfo) => {
      await page.goto("/finetune");
      await expect(page.getByTestId("create-task-form")).toBeVisible();
      await expectNoOverflow(page);
      const name = `e2e-looks-${width}-${Date.now()}`;
      await page.getByLabel("Name", { exact: true }).fill(name);
      // the form's own check passes: only the studio knows which datasets it has
      const dataset = page.getByLabel("Dataset", { exact: true });
      await dataset.fill("no-such-dataset");
      await page.getByTestId("create-task-submit").click();
      await expect(page.getByTestId("error-dataset")).toHaveText(
        'no dataset with id "no-such-dataset"',
      );
      await expect(dataset).toHaveAttribute("aria-invalid", "true");
      await expect(page.getByRole("alert").filter({ hasText: "Something went wrong" })).toHaveCount(
        0,
      );
      await expectNoOverflow(page);

      await dataset.fill("sample");
      await page.getByTestId("create-task-submit").click();
      const detail = page.getByTestId("task-detail");
      await expect(detail.getByRole("heading", { name })).toBeVisible();
      await expectNoOverflow(page);

      // pending: start and cancel are offered; pause (secondary), resume (primary) and retry are not
      await expectLooksEnabled(detail.getByTestId("action-start"));
      await expectLooksEnabled(detail.getByTestId("action-cancel"));
      await expectLooksDisabled(detail.getByTestId("action-pause"));
      await expectLooksDisabled(detail.getByTestId("action-resume"));
      await expectLooksDisabled(detail.getByTestId("action-retry"));
      await expectLooksDisabled(detail.getByTestId("action-resumeFromCheckpoint"));
      await page.screenshot({ path: testInfo.outputPath(`pending-${width}.png`), fullPage: true });

      // cancelled: the danger button is the disabled one now, retry is offered
      page.once("dialog", (dialog) => void dialog.accept());
      await detail.getByTestId("action-cancel").click();
      await expect(detail.getByTestId("status-badge")).toHaveAttribute("data-status", "cancelled");
      await expectLooksDisabled(detail.getByTestId("action-cancel"));
      await expectLooksDisabled(detail.getByTestId("action-start"));
      await expectLooksEnabled(detail.getByTestId("action-retry"));
      await expectNoOverflow(page);
      await page.screenshot({
        path: testInfo.outputPath(`cancelled-${width}.png`),
        fullPage: true,
      });
    });
  });
}

test("a task created through the form shows in the list and in its detail", async ({
  page,
}, testInfo) => {
  await page.goto("/");
  await expect(page).toHaveURL(/\/finetune$/);
  const before = await shownTaskCount(page);
  const name = `e2e-create-${Date.now()}`;

  await page.getByLabel("Name", { exact: true }).fill(name);
  await expect(page.getByLabel("Model")).toHaveValue("builtin:tiny");
  await page.getByLabel("Dataset", { exact: true }).fill("sample");
  await page.getByLabel("Epochs").fill("1");
  await page.getByLabel("Learning rate").fill("0.001");
  await page.getByLabel("Batch size").fill("4");
  await page.getByLabel("LoRA rank").fill("4");
  await page.getByLabel("LoRA alpha").fill("8");
  await page.screenshot({ path: testInfo.outputPath("create-form-filled.png"), fullPage: true });
  await page.getByTestId("create-task-submit").click();

  const detail = page.getByTestId("task-detail");
  await expect(detail).toBeVisible();
  await expect(detail.getByRole("heading", { name })).toBeVisible();
  await expect(page).toHaveURL(/[?&]task=t[a-z0-9]+/);
  await expect(detail.getByTestId("status-badge")).toBeVisible();
  await expect(detail.getByTestId("hp-epochs")).toHaveText("1");
  await expect(detail.getByTestId("hp-learningRate")).toHaveText("0.001");
  await expect(detail.getByTestId("hp-loraRank")).toHaveText("4");
  await expect(detail.locator('[data-event-type="created"]')).toBeVisible();

  const row = page.getByTestId("task-row").filter({ hasText: name });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText("builtin:tiny");
  expect(await shownTaskCount(page)).toBe(before + 1);
  await page.screenshot({ path: testInfo.outputPath("task-created.png"), fullPage: true });

  // the selection lives in the URL: a reload shows the same task
  await page.reload();
  await expect(page.getByTestId("task-detail").getByRole("heading", { name })).toBeVisible();

  // closing the detail brings the form back; selecting the row opens the task again
  await page.getByTestId("detail-close").click();
  await expect(page.getByTestId("create-task-form")).toBeVisible();
  await page.getByTestId("task-row").filter({ hasText: name }).click();
  await expect(page.getByTestId("task-detail").getByRole("heading", { name })).toBeVisible();
});

test("an invalid form shows each error next to its field and creates nothing", async ({
  page,
}, testInfo) => {
  const createCalls: string[] = [];
  page.on("request", (request) => {
    if (request.url().includes("task.create")) createCalls.push(request.url());
  });
  await page.goto("/finetune");
  const shownBefore = await shownTaskCount(page);
  const totalBefore = await studioTaskTotal(page);

  await page.getByLabel("Name", { exact: true }).fill("");
  await page.getByLabel("Dataset", { exact: true }).fill("sample");
  await page.getByLabel("Epochs").fill("0");
  await page.getByLabel("Learning rate").fill("0");
  await page.getByLabel("Batch size").fill("");
  await page.getByTestId("create-task-submit").click();

  await expect(page.getByTestId("error-name")).toHaveText("Required");
  await expect(page.getByTestId("error-epochs")).toHaveText("Must be at least 1");
  await expect(page.getByTestId("error-learningRate")).toHaveText("Must be greater than 0");
  await expect(page.getByTestId("error-batchSize")).toHaveText("Enter a number");
  await expect(page.getByTestId("error-dataset")).toHaveCount(0);
  await expect(page.getByTestId("error-model")).toHaveCount(0);
  // each error is tied to its input, so a screen reader reads it with the field
  await expect(page.getByLabel("Epochs")).toHaveAttribute("aria-invalid", "true");
  await expect(page.getByLabel("Epochs")).toHaveAttribute("aria-describedby", /error-epochs/);
  await page.screenshot({ path: testInfo.outputPath("invalid-form.png"), fullPage: true });

  await expect(page.getByTestId("task-detail")).toHaveCount(0);
  await page.reload();
  expect(await shownTaskCount(page)).toBe(shownBefore);
  expect(await studioTaskTotal(page)).toBe(totalBefore);
  expect(createCalls).toEqual([]);

  // the errors speak the reader's language too
  await page.getByTestId("language-switcher").selectOption("zh-CN");
  await page.getByLabel("学习率").fill("0");
  await page.getByTestId("create-task-submit").click();
  await expect(page.getByTestId("error-learningRate")).toHaveText("必须大于 0");
});

test("the language switch applies at once and is remembered", async ({ page }, testInfo) => {
  await page.goto("/finetune");
  await expect(page.getByRole("heading", { name: "New task" })).toBeVisible();
  await page.getByTestId("language-switcher").selectOption("zh-CN");
  await expect(page.getByRole("heading", { name: "新建任务" })).toBeVisible();
  await expect(page.locator("html")).toHaveAttribute("lang", "zh-CN");
  await page.screenshot({ path: testInfo.outputPath("finetune-zh-CN.png"), fullPage: true });

  await page.reload();
  await expect(page.getByRole("heading", { name: "新建任务" })).toBeVisible();
  await expect(page.getByTestId("language-switcher")).toHaveValue("zh-CN");

  await page.getByTestId("language-switcher").selectOption("en");
  await expect(page.getByRole("heading", { name: "New task" })).toBeVisible();
});

test("a deleted task leaves the list", async ({ page }) => {
  await page.goto("/finetune");
  const name = `e2e-delete-${Date.now()}`;
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Dataset", { exact: true }).fill("sample");
  await page.getByTestId("create-task-submit").click();
  const detail = page.getByTestId("task-detail");
  await expect(detail.getByRole("heading", { name })).toBeVisible();
  await expect(page.getByTestId("task-row").filter({ hasText: name })).toHaveCount(1);

  page.once("dialog", (dialog) => void dialog.accept());
  await detail.getByTestId("action-delete").click();
  await expect(page.getByTestId("create-task-form")).toBeVisible();
  await expect(page.getByTestId("task-row").filter({ hasText: name })).toHaveCount(0);
  await page.reload();
  await expect(page.getByTestId("task-count")).toBeVisible();
  await expect(page.getByTestId("task-row").filter({ hasText: name })).toHaveCount(0);
});

test("a wrong token on the sign-in page says so", async ({ page }, testInfo) => {
  await page.goto("/login");
  await expect(page.getByTestId("login-error")).toHaveCount(0);
  await page.getByLabel("Access token").fill("not-the-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/login\?error=1$/);
  await expect(page.getByTestId("login-error")).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath("login-error.png") });
});

test("a dataset upload lists its problems by line; a good one is picked and previewed", async ({
  page,
}, testInfo) => {
  await page.goto("/finetune");
  const upload = page.getByTestId("dataset-upload");
  await upload.setInputFiles({
    name: "broken.jsonl",
    mimeType: "application/json",
    buffer: Buffer.from('{"instruction":"a","output":"b"}\nnot json\n'),
  });
  await expect(page.getByTestId("dataset-upload-errors")).toContainText("Line 2");
  await page.screenshot({ path: testInfo.outputPath("dataset-upload-errors.png") });

  const rows = Array.from({ length: 3 }, (_, i) =>
    JSON.stringify({ instruction: `question ${i}`, input: "", output: `answer ${i}` }),
  );
  await upload.setInputFiles({
    name: `good-${Date.now()}.jsonl`,
    mimeType: "application/json",
    buffer: Buffer.from(`${rows.join("\n")}\n`),
  });
  await expect(page.getByTestId("dataset-upload-errors")).toHaveCount(0);
  await expect(page.getByLabel("Dataset", { exact: true })).toHaveValue(/^ds-/);
  await expect(page.getByTestId("dataset-preview")).toContainText("question 0");
  await page.screenshot({ path: testInfo.outputPath("dataset-preview.png") });
});

test("choosing the Hugging Face PEFT trainer says it is not set up here, and how to set it up", async ({
  page,
}) => {
  await page.goto("/finetune");
  await expect(page.getByTestId("hf-peft-not-ready")).toHaveCount(0);
  await page.getByLabel("Trainer").selectOption("hf-peft");
  const note = page.getByTestId("hf-peft-not-ready");
  await expect(note).toContainText("The Hugging Face PEFT trainer is not set up");
  await expect(note).toContainText("Python interpreter not found: /nonexistent/python3");
  await expect(note.locator("code")).toHaveText("npx studio setup hf-peft");
  await page.getByLabel("Trainer").selectOption("builtin");
  await expect(note).toHaveCount(0);
});
