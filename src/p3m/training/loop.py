"""The training loop: Adam, mixed precision on CUDA, gradient accumulation,
DistributedDataParallel under torchrun, atomic checkpoints, resume, validation.

Only rank 0 writes logs and checkpoints. A checkpoint holds the model, optimiser and
scaler states, epoch, optimiser step, batches done in the epoch and the torch RNG
state; with the per-sample seeding of the dataset, a resumed run continues exactly
where the interrupted one stopped.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from p3m.architectures import build_model, get_spec, spec_of
from p3m.data.layout import SPLITS, find_split
from p3m.errors import DatasetError, TrainingError
from p3m.io.outputs import output_folder
from p3m.training.config import LossWeights, TrainConfig, to_toml
from p3m.training.copy_paste import CopyPaste, FaceBank
from p3m.training.data import EpochSampler, MattingTrainDataset, collate_skip_bad, find_training_samples
from p3m.training.losses import p3m_loss
from p3m.training.recipe import RULES, departures, resolve_recipe
from p3m.utils.device import resolve_device
from p3m.utils.files import atomic_path
from p3m.utils.progress import progress_bar
from p3m.weights.io import read_state_dict, save_model

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    batches_done: int = 0  # in the current epoch
    best_sad: float = math.inf
    bad_samples: int = 0
    history: list = field(default_factory=list)  # validation rows


@dataclass
class TrainResult:
    out: Path
    state: TrainState
    final_weights: Path | None
    best_weights: Path | None
    seconds: float
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, total loss) of this run


# -- distributed ---------------------------------------------------------------------
def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


# -- model ---------------------------------------------------------------------------
def load_backbone(model: nn.Module, path: str) -> None:
    """Initialise the encoder from ImageNet weights, with or without the encoder's prefix
    (``resnet.`` / ``encoder.``), wrapped in ``{"state_dict": ...}`` or not, with or
    without ``module.``: torchvision's and timm's resnet34 (.pth or safetensors) and the
    authors' r34mp file all hold ResNet-34's tensors under the same names (mp changes
    only how the network downsamples, not its weights)."""
    state, _, label = read_state_dict(path)
    spec = spec_of(model)
    if spec is None or spec.backbone is None:
        raise TrainingError(f"{label}: this network has no ImageNet encoder to initialise")
    prefix, target = f"{spec.backbone}.", getattr(model, spec.backbone)
    state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    expected = target.state_dict()
    # Files older than PyTorch 0.4.1 (torchvision's resnet34 among them) have no BatchNorm
    # step counters; those alone may be missing and keep their value.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or wrong:
        raise TrainingError(f"{label}: not {prefix[:-1]} backbone weights for this network "
                            f"({len(missing)} missing key(s), e.g. {missing[:3]}; {len(wrong)} shape mismatch(es))")
    target.load_state_dict({k: state.get(k, v) for k, v in expected.items()}, strict=True)


def _freeze_unused(model: nn.Module) -> None:
    """Parameters outside the forward (the ImageNet classifier, ViTAE's Performer norm;
    the spec's ``frozen``) never get gradients; freezing them keeps
    DistributedDataParallel from waiting for them."""
    spec = spec_of(model)
    for name, param in model.named_parameters():
        if spec is not None and spec.is_frozen(name):
            param.requires_grad_(False)


# -- checkpoints ----------------------------------------------------------------------
def _checkpoint_path(out: Path) -> Path:
    return out / "checkpoints" / "last.pt"


def save_checkpoint(out: Path, model: nn.Module, optimiser, scaler, state: TrainState, config: TrainConfig) -> Path:
    path = _checkpoint_path(out)
    payload = {
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "scaler": scaler.state_dict(),
        "state": {k: v for k, v in asdict(state).items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "config": asdict(config),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(out: Path, model: nn.Module, optimiser, scaler) -> TrainState:
    path = _checkpoint_path(out)
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(payload["model"])
    optimiser.load_state_dict(payload["optimiser"])
    scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return TrainState(**payload["state"])


# -- validation ----------------------------------------------------------------------
def validate(model: nn.Module, config: TrainConfig, device: torch.device) -> dict[str, dict[str, float]]:
    """Mean metrics (SAD, MSE, MAD and the trimap variants) on the available test splits."""
    from p3m.evaluation.scoring import mean_metrics, score_files
    from p3m.inference.factory import open_engine
    from p3m.io.images import read_image_file

    results = {}
    engine = open_engine(model, method=config.val_method)
    for split_name in SPLITS:
        try:
            files = find_split(config.data, split_name).files()
        except DatasetError:
            continue
        rows = [score_files(engine.predict([read_image_file(files.images[stem])])[0], files.masks[stem],
                            files.trimaps.get(stem), fast=True)
                for stem in files.paired(config.val_limit or None)]
        if rows:
            results[split_name] = mean_metrics(rows)
    return results


# -- the loop ----------------------------------------------------------------------------
class _Progress:
    """tqdm with ETA on a terminal, a plain line every ``every`` steps otherwise."""

    def __init__(self, total: int, every: int, enabled: bool) -> None:
        self.every, self.enabled, self.bar = every, enabled, None
        if enabled:
            bar = progress_bar(total, "train", "step")
            self.bar = None if bar.disable else bar

    def update(self, step: int, total: int, terms: dict, start: float, first: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{terms['total']:.4f}")
        elif step % self.every == 0 or step == total:
            elapsed = time.perf_counter() - start
            eta = elapsed / max(1, step - first) * (total - step)
            print(f"p3m: step {step}/{total} loss {terms['total']:.4f} ({elapsed:.0f} s, ETA {eta:.0f} s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    start = time.perf_counter()
    rank, world, local_rank = _distributed()
    main_process = rank == 0
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if config.precision != "fp32" and device.type != "cuda":
        raise TrainingError(f"--precision {config.precision} needs CUDA; use fp32 on {device.type}")
    out = output_folder(config.out, "run folder (--out)") if main_process else Path(config.out)
    torch.manual_seed(config.seed)

    samples, problems = find_training_samples(config.data or None, config.images, config.masks or None,
                                              composition=config.composition_loss)
    if config.limit:
        samples = samples[: config.limit]
    if main_process:
        for name, reason in problems:
            print(f"p3m: skipped {name}: {reason}", file=sys.stderr)
    recipe = resolve_recipe(config.recipe, **{rule: getattr(config, rule) for rule in RULES})
    if main_process and departures(recipe):
        print(f"p3m: recipe {config.recipe}; departs from the published one in: {', '.join(departures(recipe))}",
              file=sys.stderr)
    copy_paste = None
    if config.copy_paste_faces:
        bank = FaceBank.from_folder(config.copy_paste_faces)
        copy_paste = CopyPaste(bank, config.copy_paste_probability)
        with_masks = sum(s.facemask is not None for s in samples)
        if main_process:
            print(f"p3m: P3M-CP: {len(bank.faces)} donor face(s) from {config.copy_paste_faces} "
                  f"({len(bank.skipped)} portrait(s) without a usable face); {with_masks} of {len(samples)} "
                  f"samples have a facemask to paste over", file=sys.stderr)
    dataset = MattingTrainDataset(samples, size=config.size, crop_sizes=config.crop_sizes,
                                  composition=config.composition_loss, seed=config.seed, arch=config.arch, recipe=recipe,
                                  copy_paste=copy_paste)
    sampler = EpochSampler(len(dataset), seed=config.seed, rank=rank, world_size=world)

    switches = {name: getattr(config, name) for name in ("tfi", "sbfi", "dbfi") if name in get_spec(config.arch).options}
    model = build_model(config.arch, **switches)
    if config.backbone_weights:
        load_backbone(model, config.backbone_weights)
    elif main_process and not resume:
        spec = get_spec(config.arch)
        print("p3m: warning: no --backbone-weights, so the encoder starts from random weights; the published "
              "recipe starts from ImageNet weights and its numbers depend on them (random starts learn far slower). "
              f"Pass --backbone-weights FILE with {spec.backbone_files or 'ImageNet weights of the encoder'}",
              file=sys.stderr)
    _freeze_unused(model)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    state = load_checkpoint(out, model, optimiser, scaler) if resume else TrainState()
    network = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    weights = LossWeights(config.weight_semantic, config.weight_local, config.weight_fusion, config.weight_composition)

    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(to_toml(config))
    batches_per_epoch = math.ceil(len(sampler._indices()) / config.batch_size)
    steps_per_epoch = max(1, batches_per_epoch // config.accumulate)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    logger = _StepLogger(out, enabled=main_process)
    progress = _Progress(total_steps, config.log_every, main_process)
    first_step, stopped = state.step, False
    losses: list[tuple[int, float]] = []
    final = best = None

    for epoch in range(state.epoch, config.epochs):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, start=state.batches_done * config.batch_size)
        loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                            collate_fn=collate_skip_bad, pin_memory=device.type == "cuda")
        network.train()
        for batch in loader:
            state.bad_samples += len(batch["errors"])
            if main_process:
                for message in batch["errors"]:
                    print(f"p3m: skipped sample {message}", file=sys.stderr)
            if state.bad_samples > config.max_bad_samples:
                raise TrainingError(f"{state.bad_samples} unusable samples, more than --max-bad-samples "
                                    f"{config.max_bad_samples}; last: {batch['errors'][-1] if batch['errors'] else '?'}")
            state.batches_done += 1
            if "image" not in batch:
                continue
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "errors"}
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                output = network(batch["image"])
                loss, terms = p3m_loss(output, batch, weights, composition=config.composition_loss, recipe=recipe)
            scaler.scale(loss / config.accumulate).backward()
            if state.batches_done % config.accumulate:
                continue
            scaler.step(optimiser)
            scaler.update()
            optimiser.zero_grad(set_to_none=True)
            state.step += 1
            logger.step(epoch, state.step, config.lr, terms)
            losses.append((state.step, terms["total"]))
            progress.update(state.step, total_steps, terms, start, first_step)
            if main_process and config.checkpoint_every and state.step % config.checkpoint_every == 0:
                save_checkpoint(out, model, optimiser, scaler, state, config)
            out_of_time = config.max_minutes and time.perf_counter() - start > 60 * config.max_minutes
            if (config.max_steps and state.step >= config.max_steps) or out_of_time:
                stopped = True
                break
        if stopped:
            break
        state.epoch, state.batches_done = epoch + 1, 0
        if main_process:
            save_checkpoint(out, model, optimiser, scaler, state, config)
            if config.val_every and state.epoch % config.val_every == 0:
                best = _validate_and_keep_best(model, config, device, state, out, logger) or best
        if world > 1:
            dist.barrier()
    progress.close()
    if main_process:
        save_checkpoint(out, model, optimiser, scaler, state, config)
        final = save_model(model, out / "final.safetensors")
        best_path = out / "best.safetensors"
        best = best_path if best_path.exists() else None
        logger.close()
    if world > 1:
        dist.barrier()
    return TrainResult(out, state, final, best, time.perf_counter() - start, losses)


def _validate_and_keep_best(model, config, device, state: TrainState, out: Path, logger) -> Path | None:
    results = validate(model, config, device)
    model.train()
    if not results:
        return None
    sad = sum(r["SAD"] for r in results.values()) / len(results)
    row = {"epoch": state.epoch, "step": state.step, "mean_SAD": sad,
           **{f"{split}/{k}": v for split, r in results.items() for k, v in r.items()}}
    state.history.append(row)
    logger.validation(row)
    print("p3m: validation after epoch {}: {}".format(
        state.epoch, ", ".join(f"{s} SAD {r['SAD']:.2f}" for s, r in results.items())), file=sys.stderr)
    if sad < state.best_sad:
        state.best_sad = sad
        return save_model(model, out / "best.safetensors")
    return None


class _StepLogger:
    """Per-step losses to CSV (and TensorBoard when installed); validation rows to CSV."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled, self.out = enabled, out
        self._file = self._writer = self._tb = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard is an optional extra
            self._tb = None

    def step(self, epoch: int, step: int, lr: float, terms: dict) -> None:
        if not self.enabled:
            return
        if self._writer is None:
            path = self.out / "train_log.csv"
            new = not path.exists()
            self._file = open(path, "a", newline="")
            self._writer = csv.writer(self._file)
            self._keys = sorted(terms)
            if new:
                self._writer.writerow(["epoch", "step", "lr", *self._keys])
        self._writer.writerow([epoch, step, lr, *(f"{terms.get(k, float('nan')):.6g}" for k in self._keys)])
        self._file.flush()
        if self._tb is not None:
            for k, v in terms.items():
                self._tb.add_scalar(f"loss/{k}", v, step)

    def validation(self, row: dict) -> None:
        path = self.out / "val_log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(list(row))
            writer.writerow(list(row.values()))
        if self._tb is not None:
            self._tb.add_scalar("val/mean_SAD", row["mean_SAD"], row["step"])

    def close(self) -> None:
        if self._file:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
