"""What is secret, and the one way to mask it (logs, errors, status, alerts, config warnings).

Secret, wherever it appears in a text:
- an OpenAI key: `sk-` or `rk-` and at least one more key character, not glued to a letter
  or digit before it ("task-1" is no key) -> `sk-***`, keeping a kind (`sk-proj-***`);
- the value after `Bearer`, `Authorization:`, `api-key:` or `x-api-key:` -> `Bearer ***`;
- in a URL of any scheme: the password of its userinfo (`postgresql://u:***@host/db`), and
  a query or fragment parameter named token, key, sig, signature, secret, password, auth
  (or ending in `_token`, `-key`, ...) -> `?token=***`; in http(s), a bare userinfo too;
- an http(s) URL to hooks.slack.com, or with a token-like path segment (16+ letters,
  digits, `-` or `_`, mixing letters and digits) -> `https://host/***`: a webhook URL.
Not secret: a fine-tuned model name is kept whole (`ft:gpt-4o-mini:acme:sk-team:abc`, a
suffix the user chose), ids such as `proj_abc`, and URLs with none of the above
(`http://127.0.0.1:9000/hook`). A password must be percent-encoded, as URLs require.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from ledger.errors import Problem, SettingsError

MASK = "***"
_KEY_KINDS = ("sk-proj-", "sk-admin-", "sk-svcacct-")
_VALUE = r"[^\s\"',;]+"
_TOKENS = re.compile(
    r"(?P<url>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`\\]+)"
    r"|(?P<model>\bft:[\w.-]+:[\w.-]*:[\w.-]*:[\w.-]+(?::[\w.-]+)?)"
    r"|(?P<header>(?i:\b(?:authorization|x-api-key|api-key))[\"']?\s*[:=]\s*[\"']?)"
    rf"(?P<scheme>(?i:bearer|basic|token)\s+)?{_VALUE}"
    rf"|(?P<bearer>(?i:\bbearer)\s+){_VALUE}"
    r"|(?<![A-Za-z0-9])(?P<key>[sr]k-[\w*-]+)"
)
_URL = re.compile(r"(?P<scheme>[^:]+://)(?P<authority>[^/?#]*)(?P<rest>.*)", re.DOTALL)
_SECRET_PARAM = re.compile(
    r"(?i)([?&#;](?:[\w.-]*[_-])?(?:token|key|apikey|sig|signature|secret|password|passwd|auth)=)"
    r"[^&#;\s]+"
)
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{16,}")
_TRAILING = ".,;:!?)]}>"


def mask(text: str, known: Iterable[str] = ()) -> str:
    """`text` with every secret masked; `known` are literal secrets (keys held) masked too."""
    text = _TOKENS.sub(_mask_token, text)
    for secret in known:
        if secret:
            text = text.replace(secret, MASK)
    return text


def holds_secret(text: str) -> bool:
    """Whether `text` holds anything `mask` would hide."""
    return mask(text) != text


def has_credentials(url: str) -> bool:
    """Whether a URL carries credentials: a userinfo secret or a secret-named parameter."""
    parts = _URL.fullmatch(url)
    if parts is None:
        return False
    scheme, authority, rest = parts.group("scheme", "authority", "rest")
    return (_mask_userinfo(scheme, authority), _SECRET_PARAM.sub("", rest)) != (authority, rest)


def refuse_credentials(url: str | None, setting: str) -> None:
    """SettingsError when the URL in `setting` carries credentials (they belong in keys)."""
    if url and has_credentials(url):
        message = f"must not carry credentials ({mask(url)}); keys go in their own variables"
        raise SettingsError([Problem(setting, message)])


class MaskingFilter(logging.Filter):
    """A handler filter that masks every record's message and traceback (any logger's);
    `known` are literal secrets held by the process (the HTTP token) masked too."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        super().__init__()
        self.known = tuple(k for k in known if k)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message, self.known)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text, self.known)
        return True


def _mask_token(match: re.Match[str]) -> str:
    if match["url"]:
        return _mask_url(match["url"])
    if match["model"]:
        return match["model"]
    if match["header"]:
        return match["header"] + (match["scheme"] or "") + MASK
    if match["bearer"]:
        return match["bearer"] + MASK
    key = match["key"]
    kind = next((k for k in _KEY_KINDS if key.startswith(k)), key[:3])
    return kind + MASK


def _mask_url(url: str) -> str:
    stripped = url.rstrip(_TRAILING)
    tail = url[len(stripped) :]
    parts = _URL.fullmatch(stripped)
    if parts is None:
        return url
    scheme, authority, rest = parts.group("scheme", "authority", "rest")
    authority = _mask_userinfo(scheme, authority)
    host = authority.rpartition("@")[2].split(":")[0].lower()
    path = re.split(r"[?#]", rest, maxsplit=1)[0]
    if _is_web(scheme) and (
        (host == "hooks.slack.com" and path.strip("/") not in ("", "services"))
        or any(_token_like(segment) for segment in path.split("/"))
    ):
        rest = "/" + MASK
    else:
        rest = _TOKENS.sub(_mask_token, _SECRET_PARAM.sub(rf"\1{MASK}", rest))
    return scheme + authority + rest + tail


def _mask_userinfo(scheme: str, authority: str) -> str:
    userinfo, at, host = authority.rpartition("@")
    if not at or not userinfo:
        return authority
    user, colon, password = userinfo.partition(":")
    user = _TOKENS.sub(_mask_token, user)
    if colon and password:
        userinfo = f"{user}:{MASK}"
    elif not colon and _is_web(scheme):
        userinfo = MASK
    else:
        userinfo = user + colon
    return f"{userinfo}@{host}"


def _is_web(scheme: str) -> bool:
    return scheme.lower() in ("http://", "https://")


def _token_like(segment: str) -> bool:
    return (
        _SEGMENT.fullmatch(segment) is not None
        and any(c.isdigit() for c in segment)
        and any(c.isalpha() for c in segment)
    )
