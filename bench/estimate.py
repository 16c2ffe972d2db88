"""Benchmark: `ftledger estimate` against the cookbook method run in one process.

Generates a chat dataset (mixed scripts, code, emoji, short and long examples, a few
shared system prompts), then
times, as whole processes and alternating, `ftledger estimate FILE --model gpt-4o-mini
--format json` and a one-process cookbook script (json + tiktoken per message). Prints
the median time ratio, checks both found identical token counts, and reports the peak
memory of the estimate's process tree (PSS and summed RSS, sampled from /proc).
Targets: ratio <= 0.6, peak <= 300 MB. Run it on an otherwise idle machine: the
estimate uses every core, the baseline one, so other load hurts only the estimate.

    python bench/estimate.py                 # 100 MB, 7 rounds
    python bench/estimate.py --smoke            # 6 MB, one round (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.6
TARGET_PEAK_MB = 300


def _split(words: str) -> list[str]:
    return words.split()


_WORDS = {
    "en": _split(
        "the cost of training a model depends on tokens epochs and the price per million "
        "we estimate before launch budget forecast invoice ledger reconcile usage"
    ),
    "de": _split("Straße Größe Übung Schlüssel Rechnung Kosten Modell Ausbildung Daten"),
    "ru": _split("стоимость обучения модели зависит от количества токенов эпох цены"),
    "zh": ["训练", "模型", "成本", "取决于", "令牌", "数量", "价格", "预算", "发票"],
    "ja": ["モデル", "の", "学習", "費用", "は", "トークン", "数", "に", "よります"],
    "ar": _split("تكلفة تدريب النموذج تعتمد على عدد الرموز والسعر"),
    "hi": _split("मॉडल प्रशिक्षण की लागत टोकन और कीमत पर निर्भर करती है"),
    "emoji": ["😀", "🚀", "👩‍💻", "🇫🇷", "✨", "🔥", "👍🏽"],
}
_CODE = [
    "def total(rows):\n    return sum(r.cost for r in rows)\n",
    "for (let i = 0; i < n; i++) {\n  acc += xs[i] * 2;\n}\n",
    "SELECT model, SUM(cost) FROM entries GROUP BY model;\n",
    '{"key": [1, 2, 3], "nested": {"a": null}}\n',
    '\tif err != nil {\n\t\treturn fmt.Errorf("read: %w", err)\n\t}\n',
]
_ODD = ["\u2028", "\u2029", "\u0085", "<|endoftext|>", "\\u00e9", "  ", "\n\n"]


_SYLLABLES = _split("ka lo mi ne ru sa te vo qu ix or an el th ing ed str pr ow")


def _word(rng: random.Random, pool: list[str]) -> str:
    """A word of the pool, sometimes an invented one so the vocabulary stays open."""
    if rng.random() < 0.3:
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))
    return rng.choice(pool)


def _text(rng: random.Random, words: int) -> str:
    lang = rng.choices(list(_WORDS), weights=[8, 1, 1, 1, 1, 1, 1, 1])[0]
    pool = _WORDS[lang]
    sep = "" if lang in ("zh", "ja") else " "
    parts: list[str] = []
    while len(parts) < words:
        roll = rng.random()
        if roll < 0.05:
            parts.append(rng.choice(_CODE))
        elif roll < 0.08:
            parts.append(rng.choice(_ODD))
        elif roll < 0.12:
            parts.append(str(rng.randint(0, 10**6)))
        else:
            parts.append(_word(rng, pool))
    return sep.join(parts)


_SYSTEM_PROMPTS = [_text(random.Random(i), 10 + 6 * i) for i in range(5)]


def example(rng: random.Random) -> dict[str, object]:
    """One chat example: mostly short, some long (a few thousand words).

    As in real training files, the system prompt is one of a few fixed ones (one per
    product or persona); everything else is generated afresh for every example.
    """
    messages: list[dict[str, object]] = []
    if rng.random() < 0.8:
        messages.append({"role": "system", "content": rng.choice(_SYSTEM_PROMPTS)})
    long = rng.random() < 0.02
    for _ in range(rng.randint(1, 3)):
        user: dict[str, object] = {"role": "user", "content": _text(rng, rng.randint(3, 80))}
        if rng.random() < 0.1:
            user["name"] = rng.choice(["alice", "bob", "support_bot"])
        messages.append(user)
        size = rng.randint(500, 3000) if long else rng.randint(5, 150)
        messages.append({"role": "assistant", "content": _text(rng, size)})
    return {"messages": messages}


def generate(path: Path, size_mb: float, seed: int = 7) -> int:
    """Write about `size_mb` MB of examples to `path`; returns the number of lines."""
    rng = random.Random(seed)
    limit = int(size_mb * 1024 * 1024)
    written = lines = 0
    with path.open("wb") as out:
        while written < limit:
            data = json.dumps(example(rng), ensure_ascii=rng.random() < 0.3).encode() + b"\n"
            if rng.random() < 0.05:
                data = data[:-1] + b"\r\n"
            out.write(data)
            written += len(data)
            lines += 1
    return lines


COOKBOOK = textwrap.dedent(
    """
    import json, sys
    from ledger.tokens import get_encoding
    enc = get_encoding("o200k_base")
    cap, total, billing, n = 65536, 0, 0, 0
    with open(sys.argv[1], encoding="utf-8", newline="\\n") as f:
        for line in f:
            if not line.strip():
                continue
            ex = json.loads(line)
            tokens = 3
            for message in ex["messages"]:
                tokens += 3
                for key, value in message.items():
                    tokens += len(enc.encode(value, disallowed_special=()))
                    if key == "name":
                        tokens += 1
            n += 1
            total += tokens
            billing += min(cap, tokens)
    print(json.dumps({"examples": n, "dataset_tokens": total, "billing_tokens": billing}))
    """
)


def _tree_memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) summed over a process and its descendants, from /proc (Linux).

    PSS shares each page among the processes mapping it: the memory the tree really
    uses. Summed RSS counts pages forked workers share with their parent once per
    process: an upper bound.
    """
    pss = rss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pss, rss


def run(
    cmd: list[str], *, sample_memory: bool = False
) -> tuple[float, dict[str, object], tuple[int, int]]:
    """(seconds, parsed JSON stdout, (peak PSS, peak RSS) in kB of the process tree).

    Memory is sampled only when asked: reading smaps_rollup takes the target's memory
    map lock, which would slow the very run being timed.
    """
    peak_pss = peak_rss = 0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss, peak_rss
        while not done.is_set():
            pss, rss = _tree_memory_kb(proc.pid)
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    if sample_memory:
        sampler.join()
    if proc.returncode not in (0, 1):
        sys.exit(f"{cmd[:3]} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return elapsed, json.loads(out), (peak_pss, peak_rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="reuse/keep the dataset at this path")
    parser.add_argument("--smoke", action="store_true", help="6 MB, one round (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.size_mb, args.rounds = 6, 1  # over PARALLEL_MIN_BYTES: the pool runs

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "dataset.jsonl"
        if not path.exists():
            t = time.perf_counter()
            lines = generate(path, args.size_mb)
            print(
                f"generated {path.stat().st_size / 1e6:.1f} MB, {lines} lines "
                f"in {time.perf_counter() - t:.1f}s",
                flush=True,
            )
        env_python = sys.executable
        ours = [
            env_python,
            "-m",
            "ledger",
            "estimate",
            str(path),
            "--model",
            "gpt-4o-mini",
            "--format",
            "json",
        ]
        cookbook = [env_python, "-c", COOKBOOK, str(path)]
        ratios: list[float] = []
        for i in range(args.rounds):
            t_cb, cb, _ = run(cookbook)
            t_us, us, _ = run(ours)
            same = all(us[k] == cb[k] for k in ("examples", "dataset_tokens", "billing_tokens"))
            if not same:
                sys.exit(f"token counts differ: ours {us} cookbook {cb}")
            ratios.append(t_us / t_cb)
            print(
                f"round {i + 1}: estimate {t_us:.2f}s, cookbook {t_cb:.2f}s, "
                f"ratio {t_us / t_cb:.3f}, tokens {us['dataset_tokens']} (identical)",
                flush=True,
            )
        _, _, (pss, rss) = run(ours, sample_memory=True)
    ratio = statistics.median(ratios)
    pss_mb, rss_mb = pss / 1024, rss / 1024
    print(
        f"estimate: median ratio {ratio:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}, "
        f"target <= {TARGET_RATIO}); peak PSS {pss_mb:.0f} MB, summed RSS {rss_mb:.0f} MB "
        f"(target <= {TARGET_PEAK_MB}); {os.cpu_count()} cores"
    )
    if args.smoke:
        print("estimate: smoke run, not judged")
    elif ratio > TARGET_RATIO or pss_mb > TARGET_PEAK_MB:
        print("estimate: TARGET MISSED")


if __name__ == "__main__":
    main()
