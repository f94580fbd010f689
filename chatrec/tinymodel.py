"""Build a tiny, randomly initialised chat model on disk for tests and demos.

Why this exists: the machines chatrec is tested and demoed on have no access to the Hugging Face
hub, yet the local backend (``chatrec.backends.local``) must be exercised end to end through the
real ``AutoTokenizer.from_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` path, chat
template, ``generate`` and ``TextIteratorStreamer``. A fake backend cannot catch mistakes in that
path. So this module makes a real one in about a second, entirely offline:

* a byte-level BPE tokenizer trained with the ``tokenizers`` library on a small built-in English
  corpus plus any extra text given (e.g. catalog titles, so they tokenise into sensible pieces),
  wrapped as a ``PreTrainedTokenizerFast`` with ChatML special tokens (``<|im_start|>``,
  ``<|im_end|>``, ``<|endoftext|>``; eos = ``<|im_end|>``, pad = bos = ``<|endoftext|>``) and a
  ChatML chat template. Byte-level pre-tokenisation and decoding mean any UTF-8 string round-trips
  through ``encode``/``decode`` exactly;
* a ``LlamaForCausalLM`` with hidden size 64, 2 layers, 4 heads / 2 key-value heads, intermediate
  size 128 and 2048 positions (~0.1-0.4M parameters, depending on vocabulary), seeded for
  determinism. Input and output embeddings are deliberately *not* tied: a tied, randomly
  initialised model mostly echoes its last input token (so greedy decoding after a ChatML prompt
  emits nothing but newlines), whereas untied heads give varied output that exercises streaming.

What it deliberately leaves out: the model is never trained. Its weights are random, so its replies
are random tokens -- fine for checking plumbing (loading, templating, token counting, streaming,
constrained decoding, timing) and useless for judging recommendation quality. Random tokens
include lone bytes, so decoded replies may contain U+FFFD or control characters. There is no
tokenizer normalisation and no BOS token is prepended to inputs; the vocabulary stops short of
``vocab_size`` when the corpus has too few repeated pairs to merge (about 400 ids for the built-in
corpus alone, the full 2000 once a catalog's titles are added).

Command line::

    python -m chatrec.tinymodel OUT_DIR [--catalog PATH]

``--catalog`` takes a JSONL catalog (default: the demo catalog; ``none`` for none); each line's
``"title"`` is added to the tokenizer corpus, which keeps the prompt's candidate list short enough for
the model's 2,048-token window.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

from .settings import DEFAULT_CATALOG

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]  # ids 0, 1, 2

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Small built-in corpus: enough everyday English, shopping and toy vocabulary for BPE to learn
# useful merges. Kept short so training stays well under a second.
_BASE_CORPUS = """\
You are a helpful shopping assistant. Recommend products from the catalog and explain why.
Hello! What are you looking for today? I am looking for a gift for my daughter.
She is five years old and loves animals, puzzles, dolls, and building blocks.
My son is ten and likes science kits, remote control cars, trains, and board games.
Here are a few options that might suit you. This one is a great choice because it is durable.
Could you tell me your budget? Under twenty pounds, please. Something cheaper would be better.
Do you have anything for a toddler? A soft teddy bear, a wooden puzzle, or stacking cups.
The set includes batteries, instructions, and a storage box. Suitable for ages three and up.
I would like something educational, creative, and fun for the whole family to play together.
Thank you, that sounds perfect. Would you like more suggestions? No thanks, that is all.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
Colours: red, blue, green, yellow, pink, purple, orange, black, white. Sizes: small, medium, large.
Price: 4.99, 12.50, 19.99, 25.00, 100. Pieces: 20pcs, 50 pieces, 1000 piece jigsaw.
Model railway, dinosaur figure, plush toy, action figure, craft kit, musical instrument, kite.
Outdoor games, water guns, balls, scooters, bikes, and garden toys for sunny days.
Café Crème — £12.99 🧸 naïve résumé jalapeño über 50% off! "Quoted" text, (brackets) & symbols.
"""


def _corpus_lines(extra: Iterable[str]) -> Iterator[str]:
    yield from _BASE_CORPUS.splitlines()
    for text in extra:
        if text:
            yield str(text)


def _train_tokenizer(corpus: Iterable[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is ever unknown
        show_progress=False,
    )
    backend.train_from_iterator(_corpus_lines(corpus), trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=ENDOFTEXT,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        extra_special_tokens=[IM_START, IM_END],
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_model(
    out_dir: str | Path,
    *,
    corpus: Iterable[str] = (),
    vocab_size: int = 2000,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Train a tiny byte-level BPE tokenizer and save it with a random tiny Llama to ``out_dir``.

    ``corpus`` is extra text (e.g. catalog titles) added to the built-in English corpus.
    The result loads with ``AutoTokenizer.from_pretrained`` / ``AutoModelForCausalLM.from_pretrained``.
    Building is deterministic for a given ``seed`` and corpus. Returns ``out_dir`` as a ``Path``.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(corpus, vocab_size)

    bos_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    num_heads = 4
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=2,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model.eval()

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _catalog_titles(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                title = json.loads(line).get("title")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(title, str) and title:
                yield title


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="directory to write the model and tokenizer to")
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG,
                        help="JSONL catalog whose titles are added to the tokenizer corpus (default: the demo "
                             "catalog; 'none' for the built-in corpus only)")
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    use_catalog = args.catalog and str(args.catalog).lower() != "none"
    titles = list(_catalog_titles(args.catalog)) if use_catalog else []
    out = build_tiny_model(args.out_dir, corpus=titles, vocab_size=args.vocab_size, seed=args.seed)
    print(f"wrote tiny model to {out} ({len(titles)} catalog titles in tokenizer corpus)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatrec.tinymodel",
        description="Build a tiny random chat model (untrained: replies are random tokens) for offline tests/demos.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
