"""``p3m weights install PATH [--name NAME]`` and ``p3m weights list``."""

from __future__ import annotations

import argparse

from p3m.cli import say


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="install and list P3M-Net weights in the user cache",
        description="Install validated weights (published .pth/.pth.tar/.ckpt or safetensors) into "
        "the p3m cache ($P3M_HOME or the platform cache folder); p3m matte uses them when no "
        "--checkpoint is given.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install", help="download (URL or published name) or take a checkpoint file, validate it, store as safetensors",
        description="SOURCE is a checkpoint file, an http(s) URL (Google Drive share links work; downloads resume), "
        "or the name of a checkpoint the P3M authors publish: p3mnet-r34 (ACM MM 2021) or p3mnet-vitae-s (IJCV 2023).")
    install.add_argument("path", metavar="SOURCE", help="FILE, URL, p3mnet-r34 or p3mnet-vitae-s")
    install.add_argument("--name", help="name to install under (default: the architecture)")
    install.add_argument("--arch", "--model", dest="arch", help="architecture (default: recognised)")
    install.set_defaults(func=run_install)
    listing = actions.add_parser("list", help="show installed weights")
    listing.set_defaults(func=run_list)
    fetch = actions.add_parser(
        "fetch", help="download the default engine's model and the face models (default), or the face models "
        "of p3m anonymize only (faces)",
        description="Downloads the mediapipe 0.10.14 and facenet-pytorch 2.6.0 wheels once with pip and keeps only "
        "their model files, each checked against a pinned SHA-256: default = selfie segmentation + the face "
        "models; faces = BlazeFace short/full range, the face mesh and MTCNN's three networks.")
    fetch.add_argument("what", nargs="?", default="default", choices=["default", "faces"],
                       help="default (the default) or faces")
    fetch.set_defaults(func=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    from p3m.weights.default_model import ALL_MODELS, FACE_MODELS, fetch_models

    models = ALL_MODELS if args.what == "default" else FACE_MODELS
    for path, model in zip(fetch_models(models), models):
        print(f"installed {model.purpose} ({model.wheel.publisher}) at {path}")
    if args.what == "default":  # the default engine's first cut-out would otherwise wait on this, silent
        from p3m.inference.kernels import prepare

        print(prepare())
    return 0


def run_install(args: argparse.Namespace) -> int:
    from p3m.weights.store import install

    weights = install(args.path, args.name, arch=args.arch)
    print(f"installed {weights.name} ({weights.arch}, {weights.size_mb:.0f} MB) at {weights.path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from p3m.weights.default_model import ALL_MODELS
    from p3m.weights.store import scan_installed, weights_dir

    found, problems = scan_installed()
    for path, reason in problems:
        say.problem(f"skipped {path}: {reason}")
    for model in ALL_MODELS:
        path = model.path()
        print(f"{model.file_name:40s} " + (f"{path.stat().st_size / 1e6:7.1f} MB  {path}" if path.is_file()
              else "not fetched (p3m weights fetch default)"))
    if not found:
        print(f"no P3M-Net weights installed in {weights_dir()}; add them with: p3m weights install p3mnet-vitae-s "
              "(or p3mnet-r34, a URL or a file)")
        return 0
    for weights in found:
        print(f"{weights.name:24s} {weights.arch:16s} {weights.size_mb:7.0f} MB  {weights.path}")
    return 0
