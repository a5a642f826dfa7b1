"""``python -m devkit build|up``.

``build`` locates (or builds once) the binaries and prints their folder; ``up`` starts a
control plane, prints ``export KUBECONFIG=...`` and keeps it running until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from .binaries import BinariesMissingError, ensure_binaries
from .controlplane import ControlPlane, ControlPlaneError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit",
        description="Local Kubernetes control plane (etcd + kube-apiserver) for tests and demos.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("build", help="find or build etcd/kube-apiserver/kubectl; print the folder")
    commands.add_parser("up", help="start a control plane and keep it running until Ctrl-C")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            print(ensure_binaries())
            return 0
        # Both unwind through the `with`, which stops the control plane. SIGINT explicitly too:
        # a shell starts background jobs with it ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.default_int_handler)
        try:
            with ControlPlane() as control_plane:
                print(f"export KUBECONFIG={control_plane.kubeconfig}", flush=True)
                print(
                    f"control plane at {control_plane.server} is ready; Ctrl-C stops it",
                    file=sys.stderr,
                    flush=True,
                )
                signal.pause()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr, flush=True)
        return 0
    except (BinariesMissingError, ControlPlaneError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
