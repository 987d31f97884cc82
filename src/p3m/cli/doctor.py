"""``p3m doctor``: report the environment and check p3m's numbers on this machine."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="report versions, devices and threads; verify the network against the reference",
        description="Report the environment and check that the network reproduces the "
        "published model's outputs on the reference fixture shipped with p3m.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.doctor import environment_report, installation_report, run_checks

    print("Environment")
    for line in environment_report():
        print(f"  {line}")
    print("Installed")
    for line in installation_report():
        print(f"  {line}")
    from p3m.doctor import has_module

    if not has_module("torch"):
        print("Network checks: skipped (they run P3M-Net, which needs PyTorch: pip install 'p3m[torch]')")
    results = run_checks()
    for result in results:
        print(f"[{'ok' if result.ok else 'FAILED'}] {result.name}")
        for line in result.lines:
            print(f"    {line}")
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed")
    return 1 if failed else 0
