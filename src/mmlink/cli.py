"""The ``mmlink`` command. Every subcommand has ``--help``; errors in the input print one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmlink import __version__

PRESET_LINES = """presets:
  tiny   random 32-d weights, byte-level tokenizers; for tests (outputs are noise)
  mini   EfficientNet-Lite0 + MiniLM-initialised Q-Former + SmolLM2-135M-Instruct, offline.
         NOTE: mini's Q-Former cross-attention, query tokens and projection are not trained yet,
         so its answers do not describe the images; the first use assembles its weights into
         the cache ($MMLINK_CACHE, default ~/.cache/mmlink), later uses load in about a second.
  DIR    a checkpoint directory: mmlink's own save, a trainable-only save, or a directory written by
         transformers' InstructBlipForConditionalGeneration.save_pretrained"""


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="answer a prompt about one or more images",
        description="Answer a prompt about several images with a Q-Former-family model (InstructBLIP layout, "
        "optionally with SAM's bidirectional semantic guidance between the images).",
        epilog=PRESET_LINES
        + """

prompt:
  Put one <image> placeholder per --image where the image belongs, e.g.
    --prompt 'Image 1: <image>\\nImage 2: <image>\\nWhat do they have in common?'
  (a literal \\n is read as a newline). A prompt without placeholders gets the images first, as InstructBLIP.

examples:
  mmlink generate --model mini --image a.png --image b.png --prompt 'What is common to <image> and <image>?'
  mmlink generate --model ./ckpt --image a.jpg --prompt 'Describe the image.' --num-beams 3""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="preset name (tiny, mini) or checkpoint directory")
    p.add_argument("--image", action="append", default=[], dest="images", metavar="PATH", help="image file; repeat")
    p.add_argument("--prompt", required=True, help="instruction text with <image> placeholders")
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (default 64)")
    p.add_argument("--num-beams", type=int, default=1, help="beam search width (default 1 = greedy)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy/beam decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (with --sample)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (with --sample)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="HF repetition penalty (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    p.add_argument(
        "--sam-mode",
        choices=["none", "linear", "bsg_mean", "bsg_adaptive"],
        default=None,
        help="override the checkpoint's SAM variant (none = plain InstructBLIP)",
    )
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from mmlink.generate import GenerationSettings, run

    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
        do_sample=args.sample,
        temperature=args.temperature,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )
    prompt = args.prompt.replace("\\n", "\n")
    print(run(args.model, args.images, prompt, settings, dtype=args.dtype, sam_mode=args.sam_mode))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmlink",
        description="mmlink: multi-image multimodal LLMs — SAM semantic alignment (W-former, adaptive adjustment) "
        "on an InstructBLIP-style Q-Former model.",
    )
    parser.add_argument("--version", action="version", version=f"mmlink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_generate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars are noise for a one-shot command
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"mmlink {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
