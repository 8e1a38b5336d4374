"""Sentence embeddings from a model shipped inside a pip package, loaded offline: :class:`Embedder`.

The model is WordLlama ``l2_supercat`` (256 dimensions): static token embeddings taken
from a large language model's embedding table and trained for sentence similarity, averaged
over the tokens. Its weights (16 MB, float16 safetensors) and tokenizer ship inside the
``wordllama`` wheel, it needs numpy, ``tokenizers`` and ``safetensors`` only (no torch),
and it embeds thousands of questions per second on one core. Other pip-shipped models
either ship no weights (``model2vec`` fetches them from a hub) or need torch.

Loading is offline by construction: the files are opened from the installed package
(``importlib.resources``), never through a download helper, and ``HF_HUB_OFFLINE=1`` is set
so the tokenizer library cannot reach a hub either. (``WordLlama.load()`` itself is not
used: in wordllama 0.4 it looks for the tokenizer in ``wordllama/tokenizer/`` while the
wheel ships it in ``wordllama/tokenizers/``, and then tries to download it.) A missing package raises
:class:`SemanticUnavailable` naming the extra to install.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from importlib.resources import files

import numpy as np

from ..errors import InvalidInput
from ..keys import normalise_query

DEFAULT_MODEL = "wordllama-l2-supercat-256"


@dataclass(frozen=True)
class ModelFiles:
    """Where a shipped model's files live inside its package."""

    package: str
    weights: str
    tokenizer: str
    tensor: str
    dim: int


MODELS: dict[str, ModelFiles] = {
    DEFAULT_MODEL: ModelFiles("wordllama", "weights/l2_supercat_256.safetensors",
                              "tokenizers/l2_supercat_tokenizer_config.json", "embedding.weight", 256),
}
"""The models this package can load, by the name a policy's ``[semantic] model`` uses."""


class SemanticUnavailable(InvalidInput):
    """The semantic extra is not installed, or the model named is unknown."""


class Embedder:
    """Embeds questions as unit-length float32 vectors (cosine similarity = dot product).

    Texts are normalised like cache keys (NFKC, case-folded, spaces collapsed) first, so
    "Barn venues" and "barn  venues" embed alike. Thread-safe: the model is read-only.
    """

    def __init__(self, model: str = DEFAULT_MODEL):
        if model not in MODELS:
            raise SemanticUnavailable("semantic.model", f"must be one of {', '.join(MODELS)}")
        self.model = model
        self.dim = MODELS[model].dim
        self._inference = _load(MODELS[model])

    def embed(self, texts: list[str] | tuple[str, ...]) -> np.ndarray:
        """An ``(len(texts), dim)`` float32 matrix of unit rows (a zero row stays zero)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._inference.embed([normalise_query(t) for t in texts], norm=False)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)

    def embed_one(self, text: str) -> np.ndarray:
        """One unit vector of shape ``(dim,)``: the lookup path, so it skips the batch
        machinery (padding, masks) and averages the token rows directly — the same
        average pooling as :meth:`embed`."""
        ids = self._inference.tokenizer.encode(normalise_query(text), add_special_tokens=False).ids
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        vector = self._inference.embedding[ids].mean(axis=0)
        norm = float(np.sqrt(vector @ vector))
        return vector / norm if norm > 0 else vector


_LOCK = threading.Lock()
_LOADED: dict[str, object] = {}


def _load(spec: ModelFiles):
    """The model's inference object, loaded once per process from the package's own files."""
    with _LOCK:
        if spec.package not in _LOADED:
            _LOADED[spec.package] = _load_files(spec)
        return _LOADED[spec.package]


def _load_files(spec: ModelFiles):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing below may reach a hub
    try:
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference
    except ImportError as exc:
        raise SemanticUnavailable("semantic", f"needs the optional extra: pip install -e \".[semantic]\" ({exc})") from None
    root = files(spec.package)
    tokenizer = Tokenizer.from_file(str(root.joinpath(spec.tokenizer)))
    with safe_open(str(root.joinpath(spec.weights)), framework="np") as tensors:
        table = tensors.get_tensor(spec.tensor)
    return WordLlamaInference(table, tokenizer)


_DEFAULT: Embedder | None = None


def default_embedder() -> Embedder:
    """One shared :class:`Embedder` of :data:`DEFAULT_MODEL` per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Embedder()
    return _DEFAULT
