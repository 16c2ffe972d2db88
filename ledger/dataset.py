"""Training files (JSONL): format validation and token counting, the cookbook's way.

Lines end at b"\\n" only: the file is split in binary, so U+2028, U+2029 and U+0085
inside JSON strings never end a line, a trailing "\\r" is JSON whitespace, and blank
lines are skipped. Each line must be UTF-8 JSON.

Format checks (the OpenAI cookbook's names, plus `invalid_json`): `data_type` (a line
or a message is not an object), `missing_messages_list`, `message_missing_key` (no
role; or no content and no function_call/tool_calls), `message_unrecognized_key`,
`unrecognized_role`, `missing_content` (content not a string, or empty without a
function_call/tool_calls), `example_missing_assistant_message`. Preference (DPO) lines
add `missing_preferred_output` / `missing_non_preferred_output`; a file mixing chat
and DPO lines gets `mixed_format`. A line with any error is not counted. A file with
fewer than 10 valid examples (an empty one too) gets `too_few_examples` at line 0, the
whole file, as OpenAI requires (estimate.check_example_count).

Legacy prompt/completion lines (davinci-002, babbage-002: `{"prompt": str, "completion":
str}`) are recognised by a `prompt` or `completion` key without `messages`; their checks,
named in the cookbook's style: `data_type`, `missing_prompt` (absent or not a string; an
empty prompt is allowed, as OpenAI's legacy guide uses it for open-ended generation),
`missing_completion` (absent, not a string, or empty), `example_unrecognized_key` (any
other key). Such a line counts the tokens of the prompt plus those of the completion:
no per-message overhead (there are no messages) and no role warnings.

Token counts (cookbook: per message 3 + tokens of each value, +1 for a `name`; +3 per
example). Where the cookbook is silent, documented choices:
- a string value is encoded as ordinary text (`<|endoftext|>` is just text);
- `weight` (0/1, a training switch, not text) and null values count 0;
- any other non-string value (`function_call`, `tool_calls`, numbers) counts the tokens of
  its compact JSON (`json.dumps(v, ensure_ascii=False, separators=(",", ":"))`);
- example-level `tools` / `functions` count the tokens of their compact JSON, once.
DPO line: the model trains on two sequences, prompt + preferred and prompt + non-preferred,
each counted as a chat example (input.messages followed by that output's messages, +3,
plus tools); the line's tokens are their sum and each sequence is capped on its own.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROLES = frozenset({"system", "user", "assistant", "function", "tool"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
)
EXAMPLE_JSON_KEYS = ("tools", "functions")
LEGACY_KEYS = frozenset({"prompt", "completion"})
LEGACY = "prompt_completion"  # the kind of a legacy line
MAX_LISTED = 1000  # errors/warnings listed per type; all of them are counted

Count = Callable[[str], int]  # tokens of a text


@dataclass(frozen=True)
class LineIssue:
    """One error or warning, located by line (counted from 1)."""

    line: int
    type: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "type": self.type, "message": self.message}


@dataclass
class ScanStats:
    """What a scan of some lines found: small, mergeable, no per-example objects."""

    lines: int = 0
    examples: int = 0  # valid examples, the ones counted
    kinds: dict[str, int] = field(default_factory=dict)  # kind -> first line
    dataset_tokens: int = 0
    billing_tokens: int = 0
    truncated: int = 0
    histogram: Counter[int] = field(default_factory=Counter)  # tokens per example -> count
    errors: list[LineIssue] = field(default_factory=list)
    warnings: list[LineIssue] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    warning_counts: Counter[str] = field(default_factory=Counter)

    def error(self, line: int, kind: str, message: str) -> None:
        self.error_counts[kind] += 1
        if self.error_counts[kind] <= MAX_LISTED:
            self.errors.append(LineIssue(line, kind, message))

    def warn(self, line: int, kind: str, message: str) -> None:
        self.warning_counts[kind] += 1
        if self.warning_counts[kind] <= MAX_LISTED:
            self.warnings.append(LineIssue(line, kind, message))

    def merge(self, other: ScanStats, line_offset: int = 0) -> None:
        """Add `other`, which covers later lines, numbered from 1 + line_offset in the file."""
        self.lines += other.lines
        self.examples += other.examples
        for kind, line in other.kinds.items():
            self.kinds.setdefault(kind, line + line_offset)
        self.dataset_tokens += other.dataset_tokens
        self.billing_tokens += other.billing_tokens
        self.truncated += other.truncated
        self.histogram.update(other.histogram)
        _extend(self.errors, self.error_counts, other.errors, line_offset)
        _extend(self.warnings, self.warning_counts, other.warnings, line_offset)
        self.error_counts.update(other.error_counts)
        self.warning_counts.update(other.warning_counts)


def _extend(
    listed: list[LineIssue], counts: Counter[str], more: list[LineIssue], line_offset: int
) -> None:
    """Append later issues while fewer than MAX_LISTED of their type are listed."""
    room = {kind: MAX_LISTED - min(n, MAX_LISTED) for kind, n in counts.items()}
    for issue in more:
        left = room.get(issue.type, MAX_LISTED)
        if left > 0:
            listed.append(LineIssue(issue.line + line_offset, issue.type, issue.message))
            room[issue.type] = left - 1


# --- validation ---------------------------------------------------------------------


def _check_messages(messages: Any, where: str, problems: list[tuple[str, str]]) -> bool:
    """Cookbook checks on a message list; False when it is not a usable list at all."""
    if not isinstance(messages, list) or not messages:
        problems.append(("missing_messages_list", f"{where} must be a non-empty list"))
        return False
    for i, message in enumerate(messages):
        if type(message) is dict:  # fast path: a plain, valid message
            content = message.get("content")
            if (
                content
                and type(content) is str
                and message.get("role") in ROLES
                and MESSAGE_KEYS.issuperset(message)
            ):
                continue
        _check_message(message, f"{where}[{i}]", problems)
    return True


def _check_message(message: Any, at: str, problems: list[tuple[str, str]]) -> None:
    if not isinstance(message, dict):
        problems.append(("data_type", f"{at} is not an object"))
        return
    calls = message.get("function_call") or message.get("tool_calls")
    if "role" not in message or ("content" not in message and not calls):
        problems.append(("message_missing_key", f"{at} needs `role` and `content`"))
    extra = sorted(k for k in message if k not in MESSAGE_KEYS)
    if extra:
        problems.append(("message_unrecognized_key", f"{at} has unknown keys {extra}"))
    role = message.get("role")
    if role not in ROLES:
        problems.append(("unrecognized_role", f"{at} has role {role!r}"))
    content = message.get("content")
    if (content is not None and not isinstance(content, str)) or (
        not content and not calls and "content" in message
    ):
        problems.append(("missing_content", f"{at} content must be a non-empty string"))


def validate(obj: Any) -> tuple[str, list[tuple[str, str]]]:
    """(kind, problems) for one parsed line; kind is "chat", "dpo", LEGACY or "" (not
    an object)."""
    problems: list[tuple[str, str]] = []
    if not isinstance(obj, dict):  # of no kind: it does not make the file mixed
        return "", [("data_type", f"line is a JSON {type(obj).__name__}, not an object")]
    if "messages" not in obj and "input" in obj:
        return "dpo", _validate_dpo(obj)
    if "messages" not in obj and not LEGACY_KEYS.isdisjoint(obj):
        return LEGACY, _validate_legacy(obj)
    if _check_messages(obj.get("messages"), "messages", problems) and not any(
        isinstance(m, dict) and m.get("role") == "assistant" for m in obj["messages"]
    ):
        problems.append(("example_missing_assistant_message", "no assistant message"))
    return "chat", problems


def _validate_dpo(obj: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    prompt = obj["input"]
    if not isinstance(prompt, dict):
        problems.append(("data_type", "input is not an object"))
    else:
        _check_messages(prompt.get("messages"), "input.messages", problems)
    for key in ("preferred_output", "non_preferred_output"):
        output = obj.get(key)
        if not isinstance(output, list) or not output:
            problems.append((f"missing_{key}", f"{key} must be a non-empty list of messages"))
            continue
        _check_messages(output, key, problems)
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in output):
            problems.append(("example_missing_assistant_message", f"{key} has no assistant"))
    return problems


def _validate_legacy(obj: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not isinstance(obj.get("prompt"), str):
        problems.append(("missing_prompt", "`prompt` must be a string (it may be empty)"))
    completion = obj.get("completion")
    if not isinstance(completion, str) or not completion:
        problems.append(("missing_completion", "`completion` must be a non-empty string"))
    extra = sorted(k for k in obj if k not in LEGACY_KEYS)
    if extra:
        problems.append(("example_unrecognized_key", f"line has unknown keys {extra}"))
    return problems


# --- counting -----------------------------------------------------------------------


def _value_tokens(key: str, value: Any, count: Count) -> int:
    if type(value) is str:
        return count(value)
    if value is None or key == "weight":
        return 0
    return count(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def message_tokens(messages: list[dict[str, Any]], count: Count) -> int:
    """Σ per message: 3 + tokens of each value (+1 for `name`)."""
    total = 0
    for message in messages:
        total += 3
        for key, value in message.items():
            total += count(value) if type(value) is str else _value_tokens(key, value, count)
            if key == "name":
                total += 1
    return total


def _extra_tokens(example: dict[str, Any], count: Count) -> int:
    return sum(_value_tokens(k, example[k], count) for k in EXAMPLE_JSON_KEYS if k in example)


def sequences(obj: dict[str, Any], kind: str, count: Count) -> list[int]:
    """Token counts of the training sequences of one valid line (chat: 1, DPO: 2)."""
    if kind == LEGACY:
        return [count(obj["prompt"]) + count(obj["completion"])]
    if kind == "chat":
        return [message_tokens(obj["messages"], count) + 3 + _extra_tokens(obj, count)]
    prompt = obj["input"]
    base = message_tokens(prompt["messages"], count) + 3 + _extra_tokens(prompt, count)
    return [
        base + message_tokens(obj["preferred_output"], count),
        base + message_tokens(obj["non_preferred_output"], count),
    ]


def _roles(obj: dict[str, Any], kind: str) -> set[Any] | None:
    if kind == LEGACY:
        return None  # no messages: the role warnings do not apply
    messages = obj["messages"] if kind == "chat" else obj["input"]["messages"]
    return {m.get("role") for m in messages}


# --- scanning -----------------------------------------------------------------------


def _not_json(name: str) -> None:
    """NaN and Infinity: Python's json reads them, JSON (and OpenAI) does not."""
    raise ValueError(f"{name} is not valid JSON")


def scan_lines(
    data: bytes, count: Count, cap: int | None, *, safe_count: Count, max_line: int | None = None
) -> ScanStats:
    """Validate and count the lines of `data`, numbering them from 1.

    `count` is the fast path (tiktoken's core encoder); `safe_count` goes through
    tiktoken's wrapper, which repairs the lone surrogates a JSON escape can produce.
    """
    stats = ScanStats()
    loads = functools.partial(json.loads, parse_constant=_not_json)
    for index, raw in enumerate(data.split(b"\n")):
        if not raw.strip():
            continue
        line = index + 1
        stats.lines += 1
        if max_line is not None and len(raw) > max_line:
            stats.error(line, "line_too_long", f"the line is longer than {max_line:,} bytes")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            stats.error(line, "invalid_json", f"not UTF-8 (byte {exc.start + 1} of the line)")
            continue
        try:
            obj = loads(text)
        except ValueError as exc:
            stats.error(line, "invalid_json", str(exc))
            continue
        except RecursionError:
            stats.error(line, "invalid_json", "nested too deeply")
            continue
        try:
            simple = _simple_chat_tokens(obj, count)
        except UnicodeEncodeError:
            simple = None
        if simple is not None:
            stats.kinds.setdefault("chat", line)
            _tally(stats, line, [simple[0]], simple[1], cap)
            continue
        kind, problems = validate(obj)
        if kind:
            stats.kinds.setdefault(kind, line)
        if problems:
            for kind_, message in problems:
                stats.error(line, kind_, message)
            continue
        try:
            counts = sequences(obj, kind, count)
        except UnicodeEncodeError:
            counts = sequences(obj, kind, safe_count)
        _tally(stats, line, counts, _roles(obj, kind), cap)
    return stats


def _simple_chat_tokens(obj: Any, count: Count) -> tuple[int, set[str]] | None:
    """(tokens, roles) of the common example in one pass, or None for the full path.

    Common: only `messages`, each message exactly role + non-empty string content (+ a
    string name), a known role, an assistant among them. Same rules as validate() and
    sequences(), fused so that a big file's typical line is walked once.
    """
    if type(obj) is not dict or len(obj) != 1:
        return None
    messages = obj.get("messages")
    if type(messages) is not list:
        return None
    total = 3
    roles: set[str] = set()
    for message in messages:
        if type(message) is not dict:
            return None
        role = message.get("role")
        content = message.get("content")
        if role not in ROLES or type(content) is not str or not content:
            return None
        size = len(message)
        if size == 2:
            total += 3 + count(role) + count(content)
        elif size == 3 and type(name := message.get("name")) is str:
            total += 4 + count(role) + count(content) + count(name)
        else:
            return None
        roles.add(role)
    return (total, roles) if "assistant" in roles else None


def _tally(
    stats: ScanStats, line: int, counts: list[int], roles: set[Any] | None, cap: int | None
) -> None:
    tokens = sum(counts)
    stats.examples += 1
    stats.dataset_tokens += tokens
    stats.histogram[tokens] += 1
    if cap is not None and any(c > cap for c in counts):
        stats.truncated += 1
        stats.warn(line, "truncated", f"{max(counts)} tokens, over the {cap}-token limit")
        stats.billing_tokens += sum(min(cap, c) for c in counts)
    else:
        stats.billing_tokens += tokens
    if roles is None:
        return
    if "system" not in roles:
        stats.warn(line, "missing_system_message", "no system message")
    if "user" not in roles:
        stats.warn(line, "missing_user_message", "no user message")
