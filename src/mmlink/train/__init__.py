"""Training: `TrainConfig` (settings), `train` (the loop, one explicit function), data + collator.

    from mmlink.train import TrainConfig, train
    summary = train(TrainConfig(train_data="data.jsonl", out_dir="runs/x", model="tiny", max_steps=100))

See docs/training.md and ``mmlink train --help``.
"""

from mmlink.train.config import TRAINABLE_POLICIES, TrainConfig

__all__ = ["TrainConfig", "TRAINABLE_POLICIES", "train"]


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Run a training run (see `mmlink.train.loop.train`)."""
    from mmlink.train.loop import train as _train

    return _train(config, resume=resume)
