"""Constrained item spans: a transformers ``LogitsProcessor`` that makes ``[[...]]`` spans exact titles.

The system prompt asks the model to write each recommended item as ``[[Title]]``. With
``SpanLogitsProcessor`` in the generation loop the model writes freely outside spans, but once it
has written the open marker every next token must keep the span's content a prefix of
``title + close`` for some candidate title, so every span it completes is exactly one candidate
title. It cannot hallucinate an item inside a span; it can still name items in free text, which
post-hoc grounding (``grounding.py``) handles.

How it works, on bytes rather than strings so tokenizer quirks do not matter:
* a token id -> bytes table is built once per tokenizer and cached (GPT-2 byte alphabet for
  byte-level BPE; ``▁`` and ``<0xNN>`` pieces for SentencePiece; special tokens have no bytes).
  Tokens that straddle a marker (``" [["``, ``"[[T"``, ``"]]."``), markers split over two tokens
  and partial UTF-8 bytes of non-ASCII titles are all just bytes in this view;
* each row's state (outside a span: how much of the open marker its text ends with; inside: the
  span's content bytes) is advanced by the bytes of each new token. States are keyed by the
  generated ids, so rows of a batch (and re-ordered beams) each keep their own;
* inside a span the allowed next tokens are those whose bytes are a prefix of a remaining
  ``title + close`` suffix (dictionary look-ups over prefix lengths) or that finish the span and go
  on with valid text (sorted-bytes range search); results are cached per span content. Outside a
  span only tokens containing the marker's first byte can open a span; those that would open one
  with content that starts no title are blocked (precomputed once per marker state);
* end-of-sequence inside an open span is disallowed unless no continuation exists.

What it deliberately leaves out: titles a reader (``span_pattern``) could not get back from
``open title close`` are dropped from the constraint (``readable``: a marker or line break inside
the title, or a title ending in "]" whose "]]]" a reader would close one byte early); it does not force the model to
open a span (``prompts/reply_prefix.j2`` does that by pre-filling the reply), limit how many spans
it writes, or stop it repeating a title.
"""
from __future__ import annotations

import bisect
import logging
import re
from typing import Sequence

from .backends.base import SpanConstraint

log = logging.getLogger(__name__)
_HEX_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_TABLES: dict[int, tuple[object, "TokenTable"]] = {}
_MAX_CACHE = 4096
# A row's state: int = outside a span, having matched that many bytes of the open marker;
# bytes = inside a span with that content; None = text the constraint cannot follow (left free).


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: the printable stand-in character -> raw byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


class TokenTable:
    """The bytes of every token id, with the look-up structures the processor needs."""

    def __init__(self, token_bytes: list[bytes]):
        self.token_bytes = token_bytes
        self.by_bytes: dict[bytes, list[int]] = {}
        for i, b in enumerate(token_bytes):
            if b:
                self.by_bytes.setdefault(b, []).append(i)
        self.max_len = max((len(b) for b in token_bytes), default=1)
        order = sorted((b, i) for i, b in enumerate(token_bytes) if b)
        self.sorted_bytes = [b for b, _ in order]
        self.sorted_ids = [i for _, i in order]
        self._containing: dict[int, list[int]] = {}

    def starting_with(self, prefix: bytes) -> list[int]:
        """Ids of tokens whose bytes start with ``prefix`` (sorted-array range search)."""
        lo = bisect.bisect_left(self.sorted_bytes, prefix)
        hi = lo
        while hi < len(self.sorted_bytes) and self.sorted_bytes[hi].startswith(prefix):
            hi += 1
        return self.sorted_ids[lo:hi]

    def containing(self, byte: int) -> list[int]:
        if byte not in self._containing:
            self._containing[byte] = [i for i, b in enumerate(self.token_bytes) if byte in b]
        return self._containing[byte]


def token_table(tokenizer) -> TokenTable:
    """The cached ``TokenTable`` for ``tokenizer`` (built on first use: ~1 s for a 150k vocabulary)."""
    cached = _TABLES.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    table = TokenTable(_token_bytes(tokenizer))
    _TABLES[id(tokenizer)] = (tokenizer, table)
    return table


def _token_bytes(tokenizer) -> list[bytes]:
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    decoder = repr(getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", ""))
    byte_level = "ByteLevel" in decoder
    byte_map = _gpt2_byte_decoder()
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        if i in special or piece is None:
            out.append(b"")
        elif byte_level and all(ch in byte_map for ch in piece):
            out.append(bytes(byte_map[ch] for ch in piece))
        else:
            hexed = _HEX_PIECE.match(piece)
            out.append(bytes([int(hexed.group(1), 16)]) if hexed else piece.replace("▁", " ").encode("utf-8"))
    return out


class SpanLogitsProcessor:
    """Restrict every ``open ... close`` span the model writes to one of ``constraint.titles``.

    ``prompt_length`` is the number of input ids before generation starts; ``prefix`` is reply text
    already part of the input (a pre-filled reply opening such as ``"1. [["``), so generation may
    start inside a span.
    """

    def __init__(self, tokenizer, constraint: SpanConstraint, prompt_length: int, prefix: str = ""):
        self.table = token_table(tokenizer)
        self.prompt_length = int(prompt_length)
        self.open = constraint.open.encode("utf-8")
        self.close = constraint.close.encode("utf-8")
        if not self.open or not self.close:
            raise ValueError("span markers must be non-empty")
        titles = [t for t in dict.fromkeys(constraint.titles) if readable(t, constraint.open, constraint.close)]
        self.targets = [t.encode("utf-8") + self.close for t in titles]
        self._prefixes = {t[:k] for t in self.targets for k in range(len(t) + 1)}
        self._complete = set(self.targets)
        self._trans = _marker_transitions(self.open)
        eos = getattr(tokenizer, "eos_token_id", None)
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        self.initial = self.advance(0, prefix.encode("utf-8"))
        self._states: dict[tuple[int, ...], object] = {(): self.initial}
        self._inside_cache: dict[bytes, list[int]] = {}
        self._outside_cache: dict[int, list[int]] = {}
        self._tensors: dict[tuple, object] = {}

    # -- the byte automaton --------------------------------------------------------------------
    def advance(self, state, data: bytes):
        """The state after writing ``data`` in ``state`` (None if it leaves the constraint)."""
        for byte in data:
            if state is None:
                return None
            if isinstance(state, int):
                state = self._trans[state][byte]
                if state == len(self.open):
                    state = b""
            else:
                state = state + bytes((byte,))
                if state in self._complete:
                    state = 0
                elif state not in self._prefixes:
                    return None
        return state

    # -- allowed / blocked tokens --------------------------------------------------------------
    def allowed_inside(self, content: bytes) -> list[int]:
        """Token ids that keep a span with ``content`` on the way to exactly one candidate title."""
        cached = self._inside_cache.get(content)
        if cached is not None:
            return cached
        table, allowed = self.table, set()
        rests = {t[len(content):] for t in self.targets if t.startswith(content)}
        for rest in rests:
            for k in range(1, min(len(rest), table.max_len) + 1):
                allowed.update(table.by_bytes.get(rest[:k], ()))
            for tok in table.starting_with(rest):  # finishes the span and writes on outside
                if self.advance(0, table.token_bytes[tok][len(rest):]) is not None:
                    allowed.add(tok)
        if not allowed:  # no token can go on (a byte the vocabulary lacks): let the model stop
            allowed.update(self.eos_ids)
        if len(self._inside_cache) >= _MAX_CACHE:
            self._inside_cache.clear()
        result = self._inside_cache[content] = sorted(allowed)
        return result

    def blocked_outside(self, matched: int) -> list[int]:
        """Token ids that would open a span whose content starts no title, after ``matched`` marker bytes."""
        cached = self._outside_cache.get(matched)
        if cached is not None:
            return cached
        table = self.table
        cand = set(table.containing(self.open[0]))
        if matched:
            cand.update(table.starting_with(self.open[matched:matched + 1]))
        blocked = sorted(t for t in cand if self.advance(matched, table.token_bytes[t]) is None)
        self._outside_cache[matched] = blocked
        return blocked

    # -- the transformers hook -----------------------------------------------------------------
    def state_of(self, generated: Sequence[int]):
        """The state after the generated ids (cached per prefix, so each step costs one token)."""
        key = tuple(generated)
        n = len(key)
        while key[:n] not in self._states:  # walk back to the longest prefix already known
            n -= 1
        state, tb = self._states[key[:n]], self.table.token_bytes
        for i in range(n, len(key)):
            state = self.advance(state, tb[key[i]] if key[i] < len(tb) else b"")
            self._states[key[:i + 1]] = state
        return state

    def __call__(self, input_ids, scores):
        rows = input_ids[:, self.prompt_length:].tolist()
        states = [self.state_of(ids) for ids in rows]
        self._states = {tuple(ids): s for ids, s in zip(rows, states)}  # keep only the live rows'
        self._states[()] = self.initial
        out = scores
        for row, state in enumerate(states):
            if state is None:
                continue  # text the constraint cannot follow (e.g. forced by another processor)
            if isinstance(state, bytes):
                index = self._tensor("in", state, self.allowed_inside, scores)
                if index is None:
                    continue
                keep = out[row].index_select(0, index)
                out = scores.clone() if out is scores else out
                out[row].fill_(float("-inf"))
                out[row].index_copy_(0, index, keep)
            else:
                index = self._tensor("out", state, self.blocked_outside, scores)
                if index is not None:
                    out = scores.clone() if out is scores else out
                    out[row].index_fill_(0, index, float("-inf"))
        return out

    def _tensor(self, kind: str, key, compute, scores):
        """The cached index tensor of ``compute(key)`` on the scores' device (None when empty)."""
        import torch

        ckey = (kind, key, scores.shape[-1], str(scores.device))
        if ckey not in self._tensors:
            ids = [i for i in compute(key) if i < scores.shape[-1]]
            if len(self._tensors) >= _MAX_CACHE:
                self._tensors.clear()
            self._tensors[ckey] = torch.tensor(ids, dtype=torch.long, device=scores.device) if ids else None
        return self._tensors[ckey]


def span_pattern(open_: str, close: str) -> re.Pattern[str]:
    """How spans are read back (``grounding.py``): ``open``, then one line holding no other ``open``,
    then the first ``close``. So a stray ``[[`` (a user's message echoed) opens nothing that can
    swallow the next item, and the last ``open`` before a ``close`` on a line starts the span."""
    o, c = re.escape(open_), re.escape(close)
    return re.compile(f"{o}((?:(?!{o})[^\n])+?){c}")


def readable(title: str, open_: str, close: str) -> bool:
    """True if ``span_pattern`` reads ``open + title + close`` back as exactly ``title``: no line
    break or open marker inside, and the first close marker is the one after the title."""
    return bool(title) and "\n" not in title and open_ not in title and (title + close).find(close) == len(title)


def _marker_transitions(marker: bytes) -> list[list[int]]:
    """KMP automaton: matched-bytes count x next byte -> matched-bytes count."""
    trans = []
    for m in range(len(marker)):
        row = []
        for byte in range(256):
            seen = marker[:m] + bytes((byte,))
            k = min(len(seen), len(marker))
            while k and not seen.endswith(marker[:k]):
                k -= 1
            row.append(k)
        trans.append(row)
    return trans
