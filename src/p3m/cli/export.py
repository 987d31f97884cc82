"""``p3m export onnx CHECKPOINT -o NAME.onnx``: a P3M network as ONNX files for ONNX Runtime."""

from __future__ import annotations

import argparse

from p3m.export.files import GRAPHS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export P3M-Net weights as ONNX files (run with --engine onnx:NAME.onnx, no torch needed)",
        description="Write the network as ONNX (opset 18, dynamic batch, height and width in multiples "
        "of 32): NAME.onnx (the whole network, RESIZE), NAME.global.onnx and NAME.local.onnx "
        "(HYBRID's two passes). Each graph is run by ONNX Runtime after writing and compared with PyTorch.",
    )
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = formats.add_parser("onnx", help="ONNX files for ONNX Runtime (CPU or CUDA)")
    onnx.add_argument("checkpoint", metavar="WEIGHTS",
                      help="checkpoint file (.pth/.pth.tar/.ckpt/.safetensors) or installed weights name")
    onnx.add_argument("-o", "--output", required=True, metavar="NAME.onnx",
                      help="the whole network's file; the HYBRID graphs go beside it")
    onnx.add_argument("--arch", help="architecture (default: recognised from the weights)")
    onnx.add_argument("--graphs", default=",".join(GRAPHS),
                      help=f"comma-separated graphs to write (default: {','.join(GRAPHS)})")
    onnx.add_argument("--int8", action="store_true",
                      help="static int8 (ONNX Runtime's quantisation, calibrated on synthetic portraits): "
                      "4x smaller files, SAD within 1%% of fp32; faster than fp32 where the CPU has no bf16")
    onnx.add_argument("--no-check", dest="check", action="store_false",
                      help="skip running each graph in ONNX Runtime against PyTorch")
    onnx.set_defaults(func=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    from p3m.export.onnx import export_onnx
    from p3m.inference.factory import weights_file
    from p3m.weights import load_model

    source = weights_file(args.checkpoint)
    model = load_model(source, arch=args.arch, device="cpu")
    graphs = tuple(g.strip() for g in args.graphs.split(",") if g.strip())
    result = export_onnx(model, args.output, graphs=graphs, check=args.check, source=source.name, int8=args.int8)
    for graph, path in result.paths.items():
        size = path.stat().st_size / 1e6
        check = ""
        if graph in result.max_difference:
            check = f", largest difference from PyTorch {result.max_difference[graph]:.1e}"
            if args.int8:  # rounding to int8 moves noise inputs' outputs far more than a photo's SAD
                check = (f", {result.max_difference[graph]:.1e} from PyTorch's fp32 on noise inputs "
                         "(int8's cost on photos: docs/onnx.md)")
        print(f"wrote {path} ({graph} graph{', int8' if args.int8 else ''}, {size:.0f} MB{check})")
    print(f"run it with: p3m matte IMAGE --engine onnx:{result.paths.get('full', args.output)}")
    return 0
