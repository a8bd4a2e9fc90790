"""The ``mmlink`` command. Every subcommand has ``--help``; errors in the input print one line and exit 2."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Sequence

from mmlink import __version__
from mmlink.models import SAM_MODES
from mmlink.runtime import DEVICE_HELP, DTYPE_HELP, DTYPE_NAMES, PLAIN_GENERATE_HELP, QUANTIZE_HELP, QUANTIZE_SCHEMES
from mmlink.settings import add_command

PRESET_LINES = """presets:
  tiny            random 32-d weights, byte-level tokenizers; for tests (outputs are noise)
  mini            the embedded default: EfficientNet-Lite0 + MiniLM-initialised Q-Former + SmolLM2-135M-Instruct
                  with the Q-Former, projection and SAM layers mmlink trained on the world (`make train-mini`,
                  docs/mini_card.md); full SAM. Offline: the first use assembles the packaged weights into the
                  cache ($MMLINK_CACHE, default ~/.cache/mmlink), later uses load in about a second.
  mini-bsg-mean, mini-linear, mini-base, mini-stage1
                  the other rows of SAM's ablation (Table 2), trained the same way
  mini-cmaa       mini-base's recipe with VisLingInstruct's CMAA on (docs/mini_cmaa_card.md)
  mini-untrained  the mini architecture before training (new Q-Former parts random)
  tiny-llava      the LLaVA family at tiny size (CLIP ViT -> mlp2x_gelu -> Llama), random; for tests
  mini-llava      the LLaVA family from the same PyPI parts: EfficientNet-Lite0 patch features -> mlp2x_gelu ->
                  SmolLM2-135M-Instruct, its projector trained by mmlink on the world (docs/mini_llava_card.md)
  mini-llava-untrained
                  mini-llava before training (projector random)
  mini-cadvi-phase1, mini-cadvi
                  mini-llava with CaD-VI's LoRA, after Phase 1 and after Phase 1 + 2 (docs/mini_cadvi_card.md)
  DIR             a checkpoint directory: mmlink's own save (either family), a trainable-only save, or a directory
                  written by transformers' InstructBlipForConditionalGeneration or LlavaForConditionalGeneration
                  (the llava-hf/llava-1.5-7b-hf layout)"""


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "generate",
        help="answer a prompt about one or more images",
        description="Answer a prompt about several images with a model of either family: Q-Former (InstructBLIP "
        "layout, optionally with SAM's bidirectional semantic guidance between the images) or LLaVA.",
        epilog=PRESET_LINES
        + """

prompt:
  Put one <image> placeholder per --image where the image belongs, e.g.
    --prompt 'Image 1: <image>\\nImage 2: <image>\\nWhat do they have in common?'
  (a literal \\n is read as a newline). A prompt without placeholders gets the images first, as InstructBLIP.

examples:
  mmlink generate --model mini --image a.png --image b.png --prompt 'What is common to <image> and <image>?'
  mmlink generate --model ./ckpt --image a.jpg --prompt 'Describe the image.' --num-beams 3
  mmlink generate --model mini --image a.png --prompt '<image>\nWhat is in the picture?' --optimize-instruction

--optimize-instruction (VisLingInstruct's AIO, src/mmlink/aio.py): the instruction (the text after the last <image>)
  is rewritten with the paper's template, each candidate scored by its Instruction Alignment Score (mean NLL after
  the images and "Based on the image given, the most appropriate instruction should be:"; lower is better), the
  candidates put worse-first into an in-context prompt from which the model writes the optimized instruction, and
  that is answered. Every step is printed to stderr."""
    )
    p.add_argument("--model", required=True, help="preset name (tiny, mini) or checkpoint directory")
    p.add_argument("--image", action="append", default=[], dest="images", metavar="PATH", help="image file; repeat")
    p.add_argument("--prompt", required=True, help="instruction text with <image> placeholders")
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (default 64)")
    p.add_argument("--num-beams", type=int, default=1, help="beam search width (default 1 = greedy)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy/beam decoding")
    p.add_argument("--temperature", type=float, help="sampling temperature (with --sample; default 1.0)")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass (with --sample; default 1.0)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="HF repetition penalty (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    p.add_argument(
        "--sam-mode",
        choices=SAM_MODES,
        default=None,
        help="override the checkpoint's SAM variant (none = plain InstructBLIP)",
    )
    p.add_argument("--dtype", choices=DTYPE_NAMES, default="auto", help=DTYPE_HELP)
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--quantize", choices=QUANTIZE_SCHEMES, default="none", help=QUANTIZE_HELP)
    p.add_argument("--plain-generate", action="store_true", help=PLAIN_GENERATE_HELP)
    p.add_argument("--optimize-instruction", action="store_true",
                   help="optimize the instruction first (VisLingInstruct's AIO; see below)")
    p.add_argument("--aio-rewrites", type=int, default=1, metavar="K",
                   help="rewritten candidates per instruction (default 1, as in the paper)")
    p.add_argument("--aio-backend", metavar="SPEC",
                   help="the rewriter, a text-LLM spec (template is not one; local, local:PATH, openai:MODEL@URL); "
                        "default: the model's own LLM")
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from mmlink.generate import make_generation_config, run

    config = make_generation_config(
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
        do_sample=args.sample,
        temperature=args.temperature,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
    )
    prompt = args.prompt.replace("\\n", "\n")
    aio = None
    if args.optimize_instruction:
        from mmlink.aio import AioSettings

        aio = AioSettings(rewrites=args.aio_rewrites, backend=args.aio_backend)
    elif args.aio_rewrites != 1 or args.aio_backend:
        raise ValueError("--aio-rewrites and --aio-backend need --optimize-instruction")
    out = run(args.model, args.images, prompt, config, args.seed, dtype=args.dtype, sam_mode=args.sam_mode,
              quantize=args.quantize, fast_greedy=not args.plain_generate, aio=aio, device=args.device)
    if aio is not None:
        out, steps = out
        for cand, ias in zip(steps.candidates, steps.ias):
            print(f"aio: IAS {ias:.3f}  {cand}", file=sys.stderr)
        print(f"aio: optimized{' (fallback: best IAS)' if steps.fallback else ''}: {steps.optimized}", file=sys.stderr)
    print(out)
    return 0


SYNTH_EPILOG = """
output layout (DIR):
  synth.json    the run's parameters: task, split, seed, n, image size
  data.jsonl    LLaVA records, one per line: {"id", "task", "image": [paths], "conversations", "meta"}
                (prompt "Image 1: <image>\\nImage 2: <image>\\n..."), appended as each sample is done
  images/       <id>_<k>.png, the k-th image of record <id>
  data.json     the same records as one JSON list (written at the end)
  report.json   task statistics (when the task has them)
  preview.png   with --preview: the first samples with their instruction and answer

resuming:
  Writing is crash-safe. After an interrupt (Ctrl-C, kill, power loss) run the same command again: complete
  records are kept, a half-written last line is dropped, and generation goes on from the first missing sample;
  the result is byte-identical to an uninterrupted run. A larger --n grows an existing set. A directory made
  with another task, split, seed or image size is refused. Sample i depends only on (task, split, seed, i),
  so --workers changes the speed, never the output.

CaD-VI Phase 1 on your own images (task cad, --captions): pairs of images whose captions share nouns, at several
  similarity levels (Jaccard of the noun sets), a text LLM writes the commonalities-and-differences summary
  (--backend template | local | local:PATH | openai:MODEL@URL), then the text-to-image retrieval turn; same record
  format, same resuming; report.json counts levels and LLM summaries replaced by the template (and why).

examples:
  mmlink synth cad --out data/cad_train --n 20000 --split train --seed 0 --workers 8
  mmlink synth cad --captions caps.jsonl --backend openai:qwen2.5-7b@http://localhost:8000/v1 --out d --n 500 --seed 0
  mmlink synth change_caption --out /tmp/cc --n 12 --split test --seed 0 --preview
  mmlink synth-check data/cad_train/data.json"""


class _SynthHelp(argparse.Action):
    """``--help`` for ``synth``: lists the registered tasks (imported only when help is asked for)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            from mmlink.data.synth import describe_tasks

            tasks = describe_tasks()
            width = max((len(name) for name, _ in tasks), default=0)
            indent = " " * (width + 4)
            lines = [textwrap.fill(line, 118, initial_indent=f"  {name.ljust(width)}  ", subsequent_indent=indent)
                     for name, line in tasks] or ["  (none registered)"]
        except Exception as err:  # help must still work when a task module is broken
            lines = [f"  (the task list could not be loaded: {type(err).__name__}: {err})"]
        parser.epilog = "tasks:\n" + "\n".join(lines) + "\n" + SYNTH_EPILOG
        parser.print_help()
        parser.exit()


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "synth",
        help="write a synthetic multi-image data set (LLaVA JSON + PNG) from the embedded world",
        description="Generate N samples of a task of the embedded world: scene graphs rendered to PNG, text targets "
        "derived from the scene graphs (correct by construction), written as a LLaVA-format multi-image data set. "
        "Resumable: re-run the same command after an interrupt.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_SynthHelp, help="show this help (with the list of tasks) and exit")
    p.add_argument("task", metavar="TASK", help="task name (listed below)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created; resumed if it exists)")
    p.add_argument("--n", required=True, type=int, metavar="N", help="number of samples (with --captions: pairs)")
    p.add_argument("--split", choices=["train", "val", "test"],
                   help="split: its own random stream and its own held-out character identities (required for "
                   "the world; not with --captions)")
    p.add_argument("--seed", required=True, type=int, metavar="S", help="seed (>= 0); same seed, same bytes")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="processes generating samples (default 1)")
    p.add_argument("--image-size", type=int, default=224, metavar="PX", help="image side in pixels (default 224)")
    p.add_argument("--preview", action="store_true", help="also write preview.png, a contact sheet of 6 samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    user = p.add_argument_group("CaD-VI Phase 1 on your data (task cad only; mmlink.data.phase1)")
    user.add_argument("--captions", metavar="FILE", help='JSONL of {"image": path, "caption": text}: pair images '
                      "whose captions share nouns at several similarity levels, a text LLM writes the CaD summary")
    user.add_argument("--backend", metavar="SPEC", help="the text LLM: template (default), local, local:PATH, "
                      "openai:MODEL@URL")
    user.add_argument("--model", metavar="NAME", help="the server's model name, for --backend openai:URL")
    user.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                      help="environment variable holding the server's API key (default OPENAI_API_KEY)")
    user.add_argument("--nouns", metavar="FILE", help="a noun lexicon (one per line) instead of the built-in finder")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from mmlink.data.synth import format_summary, synthesize

    if args.captions:
        return _run_synth_captions(args)
    for flag, value in (("--backend", args.backend), ("--model", args.model), ("--nouns", args.nouns)):
        if value:
            raise ValueError(f"{flag} applies to --captions (your data); the world's texts come from its scene graphs")
    if args.split is None:
        raise ValueError("the world needs --split (train, val or test)")
    try:
        result = synthesize(
            args.task,
            args.out,
            n=args.n,
            split=args.split,
            seed=args.seed,
            workers=args.workers,
            image_size=args.image_size,
            preview=args.preview,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(f"mmlink synth: interrupted; run the same command again to resume into {args.out}", file=sys.stderr)
        return 130
    except OSError as err:  # unwritable directory, full disk: one line, like the input errors
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(str(err)) from err
    print(format_summary(result))
    return 0


def _run_synth_captions(args: argparse.Namespace) -> int:
    from mmlink.data.phase1 import Phase1Config, format_summary, synthesize_cad

    if args.task != "cad":
        raise ValueError(f"--captions makes CaD-VI Phase-1 data: task cad, not {args.task!r}")
    if args.split or args.workers != 1 or args.image_size != 224:
        raise ValueError("--split, --workers and --image-size are for the world; --captions uses your images as "
                         "they are")
    config = Phase1Config(captions=args.captions, out=args.out, n=args.n, seed=args.seed,
                          backend=args.backend or "template", model=args.model, api_key_env=args.api_key_env,
                          lexicon=args.nouns, preview=args.preview, progress=not args.no_progress)
    try:
        result = synthesize_cad(config)
    except KeyboardInterrupt:
        print(f"mmlink synth: interrupted; run the same command again to resume into {args.out}", file=sys.stderr)
        return 130
    print(format_summary(result))
    return 0


def _add_synth_check(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "synth-check",
        help="validate a LLaVA-format multi-image data set (.json, .jsonl, a directory holding one, or a saved "
        "datasets directory)",
        description="Validate a LLaVA-format multi-image data set: every record has a string id, an image list "
        "(none: a text-only record), conversations alternating human/gpt (or user/assistant; from/value or "
        "role/content) with non-empty values, as many <image> placeholders in the human turns as images, and "
        "existing image files. Prints a report; the first bad record is an error (exit 2) unless --skip-bad; a "
        "data set with no records, or none valid, is an error either way.",
    )
    p.add_argument("file", metavar="PATH", help="data set: a .json list or .jsonl file; a directory holding "
                   "data.jsonl (mmlink synth's --out), data.json or exactly one such file; or a directory written "
                   "by datasets' save_to_disk (embedded images are written once to DIR/.mmlink-images)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad records and count them by reason")
    p.add_argument("--image-root", metavar="DIR", default=None,
                   help="directory relative image paths start from (default: the data file's directory)")
    p.add_argument("--verify-images", action="store_true", help="also decode every image (slow)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run_synth_check)


def _run_synth_check(args: argparse.Namespace) -> int:
    import json

    from mmlink.data.formats import read_dataset, resolve_data_path

    path = resolve_data_path(args.file)  # a directory names the file it holds; the report says which
    _, report = read_dataset(path, image_root=args.image_root, skip_bad=args.skip_bad,
                             verify_images=args.verify_images)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{path}: {report['total']} records, {report['kept']} valid, {report['skipped']} skipped")
    for reason, count in sorted(report["reasons"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {reason}: {count}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmlink",
        description="mmlink: multi-image multimodal LLMs — SAM semantic alignment (W-former, adaptive adjustment) "
        "on an InstructBLIP-style Q-Former model; CaD-VI comparison tuning on a LLaVA-style model with LoRA.",
    )
    parser.add_argument("--version", action="version", version=f"mmlink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_generate(sub)
    _add_synth(sub)
    _add_synth_check(sub)
    from mmlink.train import cli as train_cli

    train_cli.add_parser(sub)  # mmlink train
    from mmlink.eval import bench, judge_check
    from mmlink.eval import cli as eval_cli
    from mmlink.recipes import ablation, cadvi, sweep, vislinginstruct
    from mmlink.serve import cli as serve_cli

    eval_cli.add_parsers(sub)  # mmlink score, eval, report
    bench.add_parser(sub)
    sweep.add_parser(sub)
    ablation.add_parser(sub)
    judge_check.add_parser(sub)
    cadvi.add_parser(sub)  # mmlink cadvi phase2 | annotate | filter | mix | train
    vislinginstruct.add_parser(sub)
    serve_cli.add_parsers(sub)  # mmlink serve, mmlink chat
    from mmlink.train import export  # mmlink export CKPT --out DIR
    export.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("score", "report"):  # these must not import transformers (or torch)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # weight-loading bars are noise for a one-shot command
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"mmlink {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
