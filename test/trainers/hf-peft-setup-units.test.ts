import { describe, expect, it } from "vitest";
import {
  isLocalSource,
  type PipSetting,
  PYTORCH_CPU_INDEX,
  parsePipConfigList,
  pipSources,
} from "../../src/trainers/hf-peft/pip-sources";
import { describeDevices, summarizePreflight } from "../../src/trainers/hf-peft/preflight-summary";
import {
  requirementsHash,
  torchRequirementOf,
  withTorch,
} from "../../src/trainers/hf-peft/requirements";

const CPU = "torch==2.13.0+cpu";
const none = { indexUrls: [], findLinks: [], torchRequirement: CPU };
const setting = (name: string, value: string, scope = "global"): PipSetting => ({
  scope,
  name,
  value,
});

describe("parsePipConfigList", () => {
  it("reads what `pip config list` prints, environment variables included", () => {
    const output = [
      ":env:.default-timeout='180'",
      ":env:.find-links='/opt/wheels'",
      "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
      `user.index-url="https://mirror.example/it's/simple"`,
      "not a setting",
      "",
    ].join("\n");
    expect(parsePipConfigList(output)).toEqual([
      { scope: ":env:", name: "default-timeout", value: "180" },
      { scope: ":env:", name: "find-links", value: "/opt/wheels" },
      {
        scope: "global",
        name: "extra-index-url",
        value: "file:///opt/pypi/simple file:///opt/pypi-more/simple",
      },
      { scope: "user", name: "index-url", value: "https://mirror.example/it's/simple" },
    ]);
  });
});

describe("isLocalSource", () => {
  it.each([
    ["file:///opt/pypi/simple", true],
    ["FILE:/opt/pypi", true],
    ["/opt/wheels", true],
    ["wheels", true],
    ["https://pypi.org/simple", false],
    ["http://10.0.0.1/simple", false],
  ])("%s is local: %s", (source, local) => {
    expect(isLocalSource(source)).toBe(local);
  });
});

describe("pipSources", () => {
  it("uses only a machine's local sources when every configured source is local (never PyPI)", () => {
    const settings = [
      setting("find-links", "/opt/wheels", ":env:"),
      setting("extra-index-url", "file:///opt/pypi/simple file:///opt/pypi-more/simple"),
      setting("find-links", "/opt/wheels"),
    ];
    const sources = pipSources(settings, none);
    expect(sources.args).toEqual(["--index-url", "file:///opt/pypi/simple"]);
    expect(sources.description).toBe(
      "file:///opt/pypi/simple, file:///opt/pypi-more/simple, /opt/wheels (pip's configured local sources; PyPI is not asked)",
    );
  });

  it("installs from local find-links alone with --no-index", () => {
    expect(pipSources([setting("find-links", "/opt/wheels")], none).args).toEqual(["--no-index"]);
  });

  it("leaves a configured index-url to pip", () => {
    const sources = pipSources(
      [setting("index-url", "https://mirror.example/simple"), setting("find-links", "/w")],
      none,
    );
    expect(sources).toEqual({
      args: [],
      description: "https://mirror.example/simple, /w (pip's configuration)",
    });
  });

  it("leaves pip's no-index to pip", () => {
    expect(pipSources([setting("no-index", "true"), setting("find-links", "/w")], none)).toEqual({
      args: [],
      description: "/w (pip's no-index)",
    });
  });

  it("keeps PyPI when a configured source is remote, adding PyTorch's CPU index for a +cpu pin", () => {
    const settings = [setting("extra-index-url", "file:///local https://extra.example/simple")];
    expect(pipSources(settings, none)).toEqual({
      args: ["--extra-index-url", PYTORCH_CPU_INDEX],
      description: `PyPI, file:///local, https://extra.example/simple, ${PYTORCH_CPU_INDEX} (for torch's CPU build)`,
    });
    expect(pipSources(settings, { ...none, torchRequirement: "torch==2.13.0" })).toEqual({
      args: [],
      description: "PyPI, file:///local, https://extra.example/simple",
    });
  });

  it("uses PyPI and PyTorch's CPU index on a machine with no configuration", () => {
    expect(pipSources([], none).args).toEqual(["--extra-index-url", PYTORCH_CPU_INDEX]);
    expect(pipSources([], { ...none, torchRequirement: "torch==2.13.0+cu126" }).args).toEqual([]);
  });

  it("uses exactly the sources given as options", () => {
    const settings = [setting("extra-index-url", "file:///configured")];
    expect(
      pipSources(settings, {
        ...none,
        indexUrls: ["https://a.example/simple", "https://b.example/simple"],
        findLinks: ["/wheels"],
      }),
    ).toEqual({
      args: [
        "--index-url",
        "https://a.example/simple",
        "--extra-index-url",
        "https://b.example/simple",
        "--find-links",
        "/wheels",
      ],
      description: "https://a.example/simple, https://b.example/simple, /wheels (as given)",
    });
    expect(pipSources(settings, { ...none, findLinks: ["/wheels"] }).args).toEqual([
      "--no-index",
      "--find-links",
      "/wheels",
    ]);
  });
});

describe("requirements", () => {
  const text = "# pinned\nnumpy==2.4.6\ntorch==2.13.0+cpu\ntransformers==5.18.0\n";

  it("finds and replaces the torch pin", () => {
    expect(torchRequirementOf(text)).toBe("torch==2.13.0+cpu");
    expect(withTorch(text, undefined)).toBe(text);
    expect(withTorch(text, "torch==2.13.0")).toBe(
      "# pinned\nnumpy==2.4.6\ntorch==2.13.0\ntransformers==5.18.0\n",
    );
  });

  it.each([
    "torch",
    "torch>=2",
    "torch==2.13.0 --index-url x",
    "torch==2.13.0;rm -rf /",
    "numpy==1",
  ])("refuses %j as a torch pin", (pin) => {
    expect(() => withTorch(text, pin)).toThrow(/exact pin such as torch==2.13.0/);
  });

  it("refuses requirements without a torch pin", () => {
    expect(() => torchRequirementOf("numpy==2\n")).toThrow(/pin no torch/);
  });

  it("names an environment by its pins and interpreter, not by comments", () => {
    const hash = requirementsHash(text, "/usr/bin/python3 3.11.7");
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(requirementsHash(`# other comment\n${text}\n\n`, "/usr/bin/python3 3.11.7")).toBe(hash);
    expect(requirementsHash(withTorch(text, "torch==2.13.0"), "/usr/bin/python3 3.11.7")).not.toBe(
      hash,
    );
    expect(requirementsHash(text, "/usr/bin/python3 3.12.1")).not.toBe(hash);
  });
});

describe("summarizePreflight", () => {
  it("reads versions, CUDA and GPUs, and describes the devices", () => {
    const summary = summarizePreflight({
      python: "3.11.7",
      packages: {
        torch: { ok: true, version: "2.13.0+cu126" },
        transformers: { ok: true, version: "5.18.0" },
        peft: { ok: false, version: null },
      },
      cuda: { available: true, device_count: 2, version: "12.6", devices: ["H200", "H200"] },
    });
    expect(summary).toEqual({
      python: "3.11.7",
      packages: { torch: "2.13.0+cu126", transformers: "5.18.0", peft: null, accelerate: null },
      cuda: { available: true, version: "12.6", devices: ["H200", "H200"] },
    });
    expect(describeDevices(summary)).toBe("CUDA 12.6, 2 GPUs: H200, H200");
  });

  it("says CPU only for a CPU build, and for a CUDA build that sees no GPU", () => {
    expect(describeDevices(summarizePreflight({ cuda: { available: false, version: null } }))).toBe(
      "CPU only (a CPU build of torch)",
    );
    expect(
      describeDevices(summarizePreflight({ cuda: { available: false, version: "12.6" } })),
    ).toBe("CPU only (torch is built for CUDA 12.6, but sees no GPU)");
  });

  it("reads a report of an older preflight, or garbage, as unknown", () => {
    expect(summarizePreflight({ packages: "x", cuda: 3 })).toEqual({
      python: null,
      packages: { torch: null, transformers: null, peft: null, accelerate: null },
      cuda: { available: false, version: null, devices: [] },
    });
  });
});
