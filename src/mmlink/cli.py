"""The ``mmlink`` command. Every subcommand has ``--help``; errors in the input print one line and exit 2."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from mmlink import __version__
from mmlink.models import SAM_MODES
from mmlink.runtime import DEVICE_HELP, DTYPE_HELP, DTYPE_NAMES, QUANTIZE_SCHEMES

QUANTIZE_HELP = ("weight-only quantization of the LLM's linear layers on the CPU: none (default), int8 (per channel) "
                 "or int4 (groups of 32, GGUF Q4_1's layout): 4x / 8x fewer weight bytes per decoded token")
PLAIN_GENERATE_HELP = ("decode with transformers' generate on the model exactly as loaded, instead of mmlink's "
                       "static-cache greedy loop and oneDNN-packed CPU layers (the same tokens, slower; "
                       "for comparison)")

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
    p = sub.add_parser(
        "generate",
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
  that is answered. Every step is printed to stderr.""",
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
    aio = None
    if args.optimize_instruction:
        from mmlink.aio import AioSettings

        aio = AioSettings(rewrites=args.aio_rewrites, backend=args.aio_backend)
    elif args.aio_rewrites != 1 or args.aio_backend:
        raise ValueError("--aio-rewrites and --aio-backend need --optimize-instruction")
    out = run(args.model, args.images, prompt, settings, dtype=args.dtype, sam_mode=args.sam_mode,
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
    p = sub.add_parser(
        "synth",
        help="write a synthetic multi-image data set (LLaVA JSON + PNG) from the embedded world",
        description="Generate N samples of a task of the embedded world: scene graphs rendered to PNG, text targets "
        "derived from the scene graphs (correct by construction), written as a LLaVA-format multi-image data set. "
        "Resumable: re-run the same command after an interrupt.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p = sub.add_parser(
        "synth-check",
        help="validate a LLaVA-format multi-image data set (.json, .jsonl, a directory holding one, or a saved "
        "datasets directory)",
        description="Validate a LLaVA-format multi-image data set: every record has a string id, an image list "
        "(none: a text-only record), conversations alternating human/gpt (or user/assistant; from/value or "
        "role/content) with non-empty values, as many <image> placeholders in the human turns as images, and "
        "existing image files. Prints a report; the first bad record is an error (exit 2) unless --skip-bad; a "
        "data set with no records, or none valid, is an error either way.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


TRAIN_EPILOG = """
recipe (defaults, SAM §5 / InstructBLIP):
  AdamW beta=(0.9, 0.999), weight decay 0.05 (matrices only), lr 2e-5 with 240 linear warm-up steps then
  cosine decay to 0 at max_steps, batch 20 per process, gradient clipping at 1.0, fp32 master weights.
  mixed_precision: auto (default) = bf16 autocast only where the hardware computes bf16 natively (a CUDA GPU
  with bf16, a CPU with AVX512-BF16 or AMX), else none (fp32); no, bf16, fp16 are used as given. The choice
  and its reason are recorded in train_summary.json.
  trainable: sam (default: SAM's new linears + language projection; vision, Q-Former and LLM frozen),
  projection, qformer (query tokens + Q-Former + SAM + projection), all, or a list of parameter-name prefixes.
  The loss is the summed token cross-entropy over the global batch divided by its number of target tokens
  (labels on every gpt turn + EOS; -100 on human turns, image tokens and padding; targets never truncated).

config:
  A YAML or JSON mapping of TrainConfig fields (see configs/train/tiny_sam.yaml); every field can be overridden
  with a flag below (--max-steps 100, --trainable sam.,language_projection., --betas 0.9,0.98). Unknown keys and
  wrong types are errors (exit 2).

files written under out_dir:
  checkpoints/step-XXXXXX/  trainable.safetensors + mmlink_delta.json (loadable with mmlink.models.load),
                            optimizer.pt, scheduler.pt, rng_rank<r>.pt, trainer_state.json (step, epoch, data
                            position, seed, config); written atomically (temp dir + rename), newest keep_last kept
  final/                    the trained model, trainable-only (mmlink generate --model OUT/final); a
                            standalone copy: mmlink export OUT/final --out DIR
  tensorboard/              loss, lr, samples/s, grad norm, val loss, generation samples
  samples.jsonl             generation samples (id, prediction, reference) every sample_every steps
  train_summary.json        steps, epochs, time_s, samples_per_s, trainable_params/total_params/trainable_fraction,
                            initial/final train loss, final val loss, ...

resume:
  --resume continues from the newest complete checkpoint (weights, optimizer, scheduler, RNG, data position) and
  reaches the same final weights as an uninterrupted run with the same seed. Ctrl-C prints the command to resume
  (exit 130). On a finished run --resume trains nothing; with a larger --max-steps it extends the run from its
  newest checkpoint (the cosine schedule then ends at the new max_steps).

paths:
  A relative train_data, val_data, image_root or model in the config file means the config file's directory when
  it exists there, else the working directory; out_dir and flag values are relative to the working directory.

multi-process (same command; see docs/training.md):
  accelerate launch --config_file configs/accelerate/ddp.yaml -m mmlink.cli train --config run.yaml
  torchrun --nproc_per_node 2 -m mmlink.cli train --config run.yaml
"""


def _add_train(sub: argparse._SubParsersAction) -> None:
    from mmlink.train.config import TrainConfig

    p = sub.add_parser(
        "train",
        help="train a model of either family on LLaVA-format multi-image data (optionally with LoRA)",
        description="Train (by default SAM's new layers and the language projection) on LLaVA-format multi-image "
        "conversations, in one process or under accelerate launch / torchrun.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="YAML/JSON file of training settings")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in out_dir")
    group = p.add_argument_group("settings (override the config file)")
    import dataclasses

    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else (
            "required" if f.default_factory is dataclasses.MISSING else f.default_factory())
        note = (" (bf16 autocast only where the hardware computes bf16 natively; see below)"
                if f.name == "mixed_precision" else "")
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"set_{f.name}", metavar="VALUE", default=None,
                           help=f"(default: {default}){note}")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import os
    import shlex

    from mmlink.train.config import TrainConfig, parse_overrides
    from mmlink.train.loop import latest_checkpoint, train

    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("set_") and v is not None}
    # A relative path in the config file may mean the file's directory; the flags' values mean the working directory.
    config = (TrainConfig.from_file(args.config, given) if args.config
              else TrainConfig.from_dict(parse_overrides(given)))
    main_process = os.environ.get("RANK", "0") == "0"  # one report per run

    def command(*skip: str) -> str:  # this command line again, for the messages below
        words = ["mmlink", "train", *(["--config", args.config] if args.config else [])]
        for key, value in given.items():
            words += [] if key in skip else [f"--{key.replace('_', '-')}", value]
        return " ".join(shlex.quote(str(w)) for w in words)

    launcher = " under the same launcher" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    try:
        summary = train(config, resume=args.resume)
    except KeyboardInterrupt:
        if main_process:
            latest = latest_checkpoint(config.out_dir)
            if latest is None:
                print(f"mmlink train: interrupted before the first checkpoint, nothing to resume; to start again "
                      f"run{launcher}: {command()}", file=sys.stderr)
            else:
                print(f"mmlink train: interrupted; last checkpoint {latest} (step {int(latest.name.split('-')[1])})"
                      f"; to resume run{launcher}: {command()} --resume", file=sys.stderr)
        return 130
    if not main_process:
        return 0
    if summary.get("already_finished"):
        print(f"{config.out_dir}: the run already finished ({summary['steps']} steps, model in "
              f"{summary['final_dir']}); nothing trained. To train it further raise max_steps: "
              f"{command('max_steps')} --max-steps N --resume")
        return 0
    print(
        f"trained {summary['steps']} steps in {summary['time_s']:.1f} s ({summary['samples_per_s']:.1f} samples/s); "
        f"final train loss {summary['final_train_loss']:.4f}; autocast {summary['mixed_precision']}; "
        f"model in {summary['final_dir']}"
    )
    return 0


SCORE_EPILOG = """
files:
  --pred  JSONL, one {"id": ..., "text": "..."} per line (other fields ignored; empty text allowed, scores 0)
  --ref   JSONL, one {"id": ..., "refs": ["...", ...]} per line (at least one non-empty reference each);
          default: the "refs" of the --pred lines (mmlink eval's predictions.jsonl carries them)
  --task  only the lines of that task (mmlink eval's predictions.jsonl holds every task of a run)
  Ids are compared as strings (1 and "1" are the same id); both files must have the same ids, each once.

output:
  one JSON object on stdout, scores x 100: {"BLEU-4": x, "ROUGE-L": y, "CIDEr": z, "n": n}
  (only the keys of --metrics, plus n). BLEU is corpus-level; CIDEr is CIDEr-D whose IDF is computed over the
  evaluated set, so score whole splits: sets under --min-cider-set items, or whose references are all the same,
  are refused when cider is asked for.

tokenization:
  simple  SAM's script: lowercase, punctuation stripped, whitespace split (default)
  ptb     pycocoevalcap's PTB tokenizer, as COCOEvalCap (needs java on PATH)

examples:
  mmlink score --pred pred.jsonl --ref ref.jsonl
  mmlink score --pred pred.jsonl --ref ref.jsonl --tokenize ptb --metrics bleu4,cider
  mmlink score --pred runs/eval/mini/predictions.jsonl --task change_caption"""


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="caption metrics (BLEU-4, ROUGE-L, CIDEr) of predictions against references, via pycocoevalcap",
        description="Score predicted captions against references with pycocoevalcap's BLEU, ROUGE-L and CIDEr-D "
        "scorers; prints one JSON object with the scores x 100.",
        epilog=SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, metavar="FILE", help="predictions JSONL ({\"id\", \"text\"} lines)")
    p.add_argument("--ref", metavar="FILE",
                   help="references JSONL ({\"id\", \"refs\"} lines; default: the refs of the --pred lines)")
    p.add_argument("--task", metavar="T", help="score only this task's lines (an mmlink eval predictions.jsonl)")
    p.add_argument("--tokenize", choices=["simple", "ptb"], default="simple",
                   help="simple (SAM's script, default) or ptb (PTB tokenizer, needs java)")
    p.add_argument("--metrics", default="bleu4,rougeL,cider", metavar="LIST",
                   help="comma-separated: bleu1, bleu2, bleu3, bleu4, rougeL, cider (default bleu4,rougeL,cider)")
    p.add_argument("--min-cider-set", type=int, default=10, metavar="N",
                   help="refuse CIDEr on fewer than N items (default 10; 0 turns the CIDEr checks off)")
    p.set_defaults(func=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    import json
    import warnings

    from mmlink.metrics import score_files

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = score_files(args.pred, args.ref, tokenize=args.tokenize, metrics=args.metrics,
                             min_cider_set=args.min_cider_set if args.min_cider_set > 0 else None, task=args.task)
    for w in caught:
        print(f"mmlink score: warning: {w.message}", file=sys.stderr)
    print(json.dumps(result))
    return 0

EVAL_EPILOG = """tasks (data: world = synthesized test set; released = --data-root, layouts in docs/evaluation.md):
{tasks}

examples:
  mmlink eval --model mini --task group_caption --task storytelling --task change_caption --out runs/eval/mini
  mmlink eval --model mini --task bison --task eqben --limit 200 --out runs/eval/closed --option-scoring mean
  mmlink eval --model mini --task vqa_options --out runs/eval/vqa --option-scoring generate --blind
  mmlink eval --model runs/my_ckpt --task cad_qa --judge-url http://localhost:8000/v1 --judge-model qwen --out o
  mmlink eval --model mini --task group_caption --data group_caption=my/data.jsonl --out runs/eval/mine
  mmlink eval --model /ckpt/instructblip-vicuna-7b --task vist --data-root /data/vist --out runs/eval/vist
  mmlink eval --model /ckpt/llava --task muirbench --task blink --data-root /data --out runs/eval/multi
  mmlink eval --model mini --task sam,cadvi --limit 50 --out runs/eval/papers --blind
  mmlink eval --config my_eval.yaml --limit 20      # model, task, out, data_root, ... from the file

outputs in --out: predictions.jsonl (appended per batch; a re-run skips finished items), judgements.jsonl,
metrics.json (model, settings, config, commit, seed, scores, 95% bootstrap intervals "ci"), report.md (tables in
the papers' layout); with --blind also blind/predictions.jsonl and, per task, "blind", "gap" and "gap_ci"."""


def _root_pair(text: str) -> tuple[str, str]:
    task, sep, path = text.partition("=")
    if sep and task and path and "/" not in task and "\\" not in task:
        return task, path
    return "*", text


def _task_line(name: str) -> str:
    from mmlink.eval.tasks import EVAL_TASKS

    t = EVAL_TASKS.get(name)
    data = "/".join(d for d, on in (("world", t.world_task), ("released", t.reader)) if on) or "--data"
    return f"  {name:<22} {t.kind:<10} {data:<14} {t.description}"


def _data_pair(text: str) -> tuple[str, str]:
    task, sep, path = text.partition("=")
    if not sep or not task or not path:
        raise argparse.ArgumentTypeError(f"expected TASK=PATH, got {text!r}")
    return task, path


BLIND_HELP = ("blind control: answer the same items a second time with every image replaced by a flat gray "
              "image of the processor's input size in the vision tower's normalisation mean (so the normalised "
              "pixels are 0: no visual signal); its predictions go to OUT/blind/ (resumable), and metrics.json and "
              "report.md add per task the blind scores and the gap real - blind with a paired 95%% bootstrap "
              "interval. The real pass runs too, or is reused from OUT")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from mmlink.eval.options import OPTION_SCORING_HELP, OPTION_SCORINGS
    from mmlink.eval.tasks import EVAL_TASKS

    tasks = "\n".join(_task_line(n) for n in EVAL_TASKS)
    p = sub.add_parser(
        "eval",
        help="evaluate a model on tasks: captions (BLEU-4/ROUGE-L/CIDEr), closed-ended accuracy, LLM-judged QA",
        description="Answer each task's test items with a model and score them as the papers do: generation tasks "
        "with pycocoevalcap, closed-ended tasks by ranking the candidates by log-likelihood (accuracy, chance "
        "printed beside it), open-ended CaD tasks with an LLM judge (0-5). Data: the world's test sets, "
        "synthesized once into --data-dir, a data set as its authors released it read from a local directory "
        "(--data-root: VIST, NLVR2, GQA, MuirBench, ...; nothing downloads), or your own LLaVA-format files (--data).",
        epilog=EVAL_EPILOG.format(tasks=tasks),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="YAML",
                   help="settings from a file: keys are this command's long options with '_' for '-' (model, task: "
                        "[...], out, data_root: {task: dir}, limit, ...); options given on the command line win")
    p.add_argument("--model", help="preset (tiny, mini) or checkpoint directory (required, here or in --config)")
    p.add_argument("--task", action="append", default=[], metavar="T",
                   help="task name, comma list or group (all, sam, cadvi, sam_released, vislinginstruct, "
                        "multi_image); repeatable; required here or in --config")
    p.add_argument("--out", metavar="DIR", help="run directory, resumable (required, here or in --config)")
    p.add_argument("--task-file", action="append", default=[], metavar="YAML",
                   help="register extra tasks from a YAML file (EvalTask fields; items: 'module:function' hook)")
    p.add_argument("--data", action="append", type=_data_pair, default=[], metavar="TASK=PATH",
                   help="evaluate TASK on this LLaVA-format .json/.jsonl file instead of the world's test set")
    p.add_argument("--data-root", action="append", type=_root_pair, default=[], metavar="[TASK=]DIR",
                   help="read the task's released data set from DIR (its layout: docs/evaluation.md); a bare DIR "
                        "serves every --task, each from DIR/<task> when that exists, else DIR itself (repeatable)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where world test sets are synthesized and images stored inside released data files are "
                        "written (default: OUT/data)")
    p.add_argument("--split", metavar="NAME",
                   help="world: train, val or test (default test); released data: the task's own splits (default: "
                        "the one its paper reports, e.g. nlvr2 test1, gqa testdev)")
    p.add_argument("--limit", type=int, metavar="N", help="items per task (default: each task's own size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world's test sets and of decoding (default 0)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="items per forward/generate (default 8)")
    p.add_argument("--option-scoring", choices=OPTION_SCORINGS,
                   help=OPTION_SCORING_HELP + " (default: the task's own protocol — generate for the multi-image "
                        "benchmarks, whose official code extracts the option letter — else sum)")
    p.add_argument("--blind", action="store_true", help=BLIND_HELP)
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="override each task's answer length")
    p.add_argument("--tokenize", choices=["simple", "ptb"], default="simple",
                   help="caption metric tokenization: simple (SAM's script, default) or ptb (needs java)")
    p.add_argument("--min-cider-set", type=int, default=10, metavar="N",
                   help="generation tasks with fewer items (a --limit smoke run) report CIDEr as null with the reason "
                        "instead of a meaningless number: its IDF is computed over the evaluated items (default 10; "
                        "0: always compute it)")
    p.add_argument("--dtype", choices=DTYPE_NAMES, default="auto",
                   help=DTYPE_HELP + "; the choice and its reason are recorded in run.json and metrics.json")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--quantize", choices=QUANTIZE_SCHEMES, default="none", help=QUANTIZE_HELP)
    p.add_argument("--plain-generate", action="store_true", help=PLAIN_GENERATE_HELP)
    p.add_argument("--sam-mode", choices=SAM_MODES,
                   help="override the model's SAM variant")
    p.add_argument("--image-size", type=int, default=224, metavar="PX", help="world image size (default 224)")
    p.add_argument("--label", help="display name in reports (default: the model's name)")
    p.add_argument("--aio", action="store_true",
                   help="optimize every item's instruction first (VisLingInstruct's AIO, src/mmlink/aio.py): each "
                        "prediction row records the candidates, their IAS and the optimized instruction, and the "
                        "report AIO's cost (x time per item)")
    p.add_argument("--aio-rewrites", type=int, default=1, metavar="K", help="with --aio: rewrites per instruction")
    p.add_argument("--aio-backend", metavar="SPEC", help="with --aio: the rewriter (default: the model's own LLM)")
    p.add_argument("--judge-backend", metavar="SPEC",
                   help="the judge as a text-LLM spec: template (word overlap with the reference, no model), local, "
                        "local:PATH, openai:MODEL@URL; instead of the three flags below")
    p.add_argument("--judge-url", metavar="URL", help="OpenAI-compatible endpoint of the judge (e.g. .../v1)")
    p.add_argument("--judge-model", metavar="NAME", help="model name at --judge-url")
    p.add_argument("--judge-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the judge's API key (default OPENAI_API_KEY)")
    p.add_argument("--judge-local-model", metavar="DIR",
                   help="a local transformers causal LM as judge (default without --judge-url: mini's SmolLM2, weak)")
    p.add_argument("--judge-cache", metavar="DIR", help="judge response cache (default $MMLINK_CACHE/judge)")
    p.add_argument("--judge-retries", type=int, default=2, metavar="N",
                   help="re-asks after an unparseable rating before it counts as a failure (default 2)")
    p.add_argument("--tolerate-judge-failures", action="store_true",
                   help="report the mean rating over the items the judge could rate; without it, any item the judge "
                        "fails on (unreachable, no rating) stops the run with the reason")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_eval, parser=p)


def _merge_config_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill the options not given on the command line from ``--config`` (a YAML mapping of option names)."""
    import yaml

    if not args.config:
        return
    path = Path(args.config)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise FileNotFoundError(f"--config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--config {path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names, got {type(data).__name__}")
    valid = {a.dest for a in parser._actions if a.dest not in ("help", "config", "func")}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(f"--config {path}: unknown option(s) {unknown}; valid: {', '.join(sorted(valid))}")
    for key, value in data.items():
        if key in ("data", "data_root") and isinstance(value, dict):  # {task: path} as the TASK=PATH flags give
            value = [(str(k), str(v)) for k, v in value.items()]
        if key == "task" and isinstance(value, str):
            value = [value]
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)


def _run_eval(args: argparse.Namespace) -> int:
    from mmlink.eval.harness import EvalConfig, evaluate
    from mmlink.eval.tasks import load_task_file

    _merge_config_file(args, args.parser)
    missing = [f"--{k}" for k in ("model", "task", "out") if not getattr(args, k)]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (on the command line or in --config)")

    for path in args.task_file:
        load_task_file(path)
    data, roots = dict(args.data), dict(args.data_root)
    if len(data) != len(args.data) or len(roots) != len(args.data_root):
        raise ValueError("--data or --data-root names a task twice")
    config = EvalConfig(
        out=args.out, data=data, data_root=roots, data_dir=args.data_dir, split=args.split, limit=args.limit, seed=args.seed,
        batch_size=args.batch_size, option_scoring=args.option_scoring, blind=args.blind,
        max_new_tokens=args.max_new_tokens,
        tokenize=args.tokenize, min_cider_set=args.min_cider_set, dtype=args.dtype, device=args.device, quantize=args.quantize,
        fast_greedy=not args.plain_generate,
        image_size=args.image_size, sam_mode=args.sam_mode,
        label=args.label, progress=not args.no_progress, aio=args.aio, aio_rewrites=args.aio_rewrites,
        aio_backend=args.aio_backend, judge_backend=args.judge_backend,
        judge_url=args.judge_url, judge_model=args.judge_model,
        judge_key_env=args.judge_key_env, judge_local_model=args.judge_local_model, judge_cache=args.judge_cache,
        judge_retries=args.judge_retries, tolerate_judge_failures=args.tolerate_judge_failures,
    )
    metrics = evaluate(args.model, args.task, config)
    print(Path(args.out, "report.md").read_text())
    print(f"wrote {args.out}/predictions.jsonl, metrics.json, report.md ({len(metrics['tasks'])} task(s))")
    return 0



def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="merge several eval runs (metrics.json) into one comparison table (markdown + CSV) and a bar chart",
        description="Read the metrics.json of each run directory given and write comparison.md, comparison.csv and "
        "comparison.png into --out; the markdown table is printed too (best value per column in bold).",
    )
    p.add_argument("runs", nargs="+", metavar="DIR", help="eval run directories (or their metrics.json files)")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write the comparison (default: .)")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from mmlink.eval.report import compare, load_metrics, write_comparison

    runs = [load_metrics(r) for r in args.runs]
    paths = write_comparison(runs, args.out)
    print(compare(runs)[0])
    print("wrote " + ", ".join(str(p) for p in paths.values()))
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
    _add_train(sub)
    _add_score(sub)
    _add_eval(sub)
    _add_report(sub)
    from mmlink.eval import bench, judge_check
    from mmlink.recipes import ablation, cadvi, sweep, vislinginstruct
    from mmlink.serve import cli as serve_cli

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
