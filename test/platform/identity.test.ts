import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  judge,
  type ProcessIdentity,
  parseStat,
  probe,
  readBootId,
  readIdentity,
  readStat,
  type StatFields,
  signalGroup,
} from "../../src/platform/identity";

/** A /proc/<pid>/stat line as the kernel writes it (52 fields), with the given parts. */
function statLine(pid: number, comm: string, state = "S", startTime = "123456") {
  const after = [state, "1", "200", "300", "0", "-1", "4194304"];
  while (after.length < 19) after.push(String(after.length));
  after.push(startTime);
  while (after.length < 50) after.push("0");
  return `${pid} (${comm}) ${after.join(" ")}\n`;
}

describe("parseStat", () => {
  it("reads the controlling terminal (0: none)", () => {
    const line = statLine(42, "a) b (c", "S").replace(" 1 200 300 0 ", " 1 200 300 34816 ");
    expect(parseStat(line).terminal).toBe(34816);
  });

  it.each([
    ["a plain name", "node"],
    ["an empty name", ""],
    ["spaces", "my trainer 1"],
    ["parentheses", "a(b)c"],
    ["a fake end of the name", "x) Z 9 9 9 0"],
    ["only a closing parenthesis", ")"],
    ["a newline", "two\nlines"],
    ["unicode", "训练 ✓"],
  ])("reads the fields after the last ')' when the name has %s", (_what, comm) => {
    expect(parseStat(statLine(4242, comm, "S", "98765"))).toEqual({
      pid: 4242,
      comm,
      state: "S",
      ppid: 1,
      pgrp: 200,
      session: 300,
      terminal: 0,
      cpuTicks: 23,
      startTime: "98765",
    });
  });

  it("keeps the start time as the digits the kernel wrote, even past 2^53", () => {
    expect(parseStat(statLine(1, "x", "R", "90071992547409931")).startTime).toBe(
      "90071992547409931",
    );
  });

  it.each(["Z", "X", "T", "t", "D", "I", "R"])("reads state %s", (state) => {
    expect(parseStat(statLine(7, "x", state)).state).toBe(state);
  });

  it.each([
    ["an empty line", ""],
    ["no name", "123 S 1 2 3"],
    ["no closing parenthesis", "123 (abc S 1 2 3"],
    ["a line cut short", "123 (abc) S 1 2 3"],
    ["a non-numeric pid", statLine(1, "x").replace(/^1/, "x")],
    ["a non-numeric start time", statLine(1, "x", "S", "12a")],
    ["a missing state", "1 (x) "],
  ])("rejects %s", (_what, line) => {
    expect(() => parseStat(line)).toThrow(/malformed stat line/);
  });
});

describe("judge", () => {
  const identity: ProcessIdentity = { bootId: "boot-a", pid: 10, startTime: "500" };
  const stat = (over: Partial<StatFields>): StatFields => ({
    pid: 10,
    comm: "x",
    state: "S",
    ppid: 1,
    pgrp: 10,
    session: 10,
    terminal: 0,
    cpuTicks: 0,
    startTime: "500",
    ...over,
  });

  it.each([
    ["another boot, whatever /proc says", "boot-b", stat({}), "other-boot"],
    ["another boot and no process", "boot-b", null, "other-boot"],
    ["no process", "boot-a", null, "gone"],
    ["another start time", "boot-a", stat({ startTime: "501" }), "reused"],
    ["another start time, zombie", "boot-a", stat({ startTime: "501", state: "Z" }), "reused"],
    ["a zombie", "boot-a", stat({ state: "Z" }), "zombie"],
    ["a dead process", "boot-a", stat({ state: "X" }), "zombie"],
    ["a sleeping process", "boot-a", stat({ state: "S" }), "alive"],
    ["a stopped process", "boot-a", stat({ state: "T" }), "alive"],
    ["a running process", "boot-a", stat({ state: "R" }), "alive"],
  ] as const)("%s → %s", (_what, bootId, seen, expected) => {
    expect(judge(identity, bootId, seen)).toBe(expected);
  });
});

describe("on real processes", () => {
  const dir = mkdtempSync(join(tmpdir(), "identity-test-"));
  const children: ChildProcess[] = [];
  const start = (file: string, args: string[], detached = true) => {
    const child = spawn(file, args, { detached, stdio: ["ignore", "pipe", "ignore"] });
    children.push(child);
    return child;
  };
  const exited = (child: ChildProcess) =>
    new Promise<void>((resolve) =>
      child.exitCode !== null || child.signalCode !== null
        ? resolve()
        : child.once("exit", () => resolve()),
    );

  afterEach(() => {
    delete process.env.STUDIO_BOOT_ID_FILE;
    for (const child of children.splice(0)) child.kill("SIGKILL");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads this boot's id, or the file STUDIO_BOOT_ID_FILE names", () => {
    expect(readBootId()).toBe(readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    writeFileSync(join(dir, "boot_id"), "simulated-boot\n");
    process.env.STUDIO_BOOT_ID_FILE = join(dir, "boot_id");
    expect(readBootId()).toBe("simulated-boot");
  });

  it("reads this process's identity, and nothing for a pid that does not exist", () => {
    const me = readIdentity(process.pid);
    expect(me?.pid).toBe(process.pid);
    expect(me?.startTime).toMatch(/^\d+$/);
    expect(readStat(process.pid)?.ppid).toBe(process.ppid);
    expect(readIdentity(2 ** 30)).toBeNull();
  });

  it("parses a real process whose name holds spaces and parentheses", async () => {
    // A script's file name becomes its process name (comm, cut to 15 bytes).
    const script = join(dir, "x) Z (y z");
    // The shell keeps the script's name while `sleep` runs as its child: a command after it, so
    // that no shell can exec `sleep` in its own place as the last command (dash does).
    writeFileSync(script, "#!/bin/sh\nsleep 30\nexit 0\n");
    chmodSync(script, 0o755);
    const child = start(script, []);
    // Until the kernel has exec'd the script the child still carries its parent's name.
    const deadline = Date.now() + 5_000;
    while (readStat(child.pid!)?.comm !== "x) Z (y z" && Date.now() < deadline) await sleep(5);
    const stat = readStat(child.pid!)!;
    expect(stat.comm).toBe("x) Z (y z");
    expect(stat.state).not.toBe("Z");
    expect(stat.pgrp).toBe(child.pid);
  });

  it("sees a zombie as a zombie", async () => {
    // sh execs `sleep 3`, which never reaps the short sleep it inherited: a zombie for 3 s.
    const child = start("sh", ["-c", "sleep 0.05 & echo $!; exec sleep 3"]);
    const [line] = await new Promise<string[]>((resolve) =>
      child.stdout!.once("data", (d) => resolve(String(d).split("\n"))),
    );
    const zombie = readIdentity(Number(line))!;
    const deadline = Date.now() + 2_000;
    while (probe(zombie) === "alive" && Date.now() < deadline) await sleep(10);
    expect(probe(zombie)).toBe("zombie");
    expect(signalGroup(zombie, "SIGKILL")).toBe("zombie");
  });

  it("signals only a group proven ours", async () => {
    const child = start("sleep", ["30"]);
    const ours = readIdentity(child.pid!)!;
    expect(probe(ours)).toBe("alive");

    const reused = { ...ours, startTime: String(Number(ours.startTime) - 1) };
    expect(probe(reused)).toBe("reused");
    expect(signalGroup(reused, "SIGKILL")).toBe("reused");

    writeFileSync(join(dir, "boot_id"), "after-a-reboot\n");
    process.env.STUDIO_BOOT_ID_FILE = join(dir, "boot_id");
    expect(probe(ours)).toBe("other-boot");
    expect(signalGroup(ours, "SIGKILL")).toBe("other-boot");
    delete process.env.STUDIO_BOOT_ID_FILE;

    await sleep(50);
    expect(probe(ours)).toBe("alive"); // nothing was sent

    expect(signalGroup(ours, "SIGKILL")).toBe("sent");
    await exited(child);
    expect(child.signalCode).toBe("SIGKILL");
    expect(probe(ours)).toBe("gone");
    expect(signalGroup(ours, "SIGKILL")).toBe("gone");
  });

  it("refuses a process that does not lead its own group", async () => {
    const child = start("sleep", ["30"], false); // in this test process's group
    const identity = readIdentity(child.pid!)!;
    expect(signalGroup(identity, "SIGKILL")).toBe("not-group-leader");
    await sleep(50);
    expect(probe(identity)).toBe("alive");
  });
});
