"""`make dev`: a local loop in one command, running until Ctrl-C.

Starts a real control plane (etcd + kube-apiserver) and the sandbox Google with the examples'
OAuth client registered, applies the CRDs and `manifests/examples`, runs the operator (all
namespaces) and the callback with its key as local processes, then prints the consent URL and
the environment for `kubectl` and `google-token-operator`. Ctrl-C (or SIGTERM) stops it all.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import yaml

from demo import (
    REPO,
    Demo,
    apply_crds,
    consent_url,
    hand_key_to_callback,
    info,
    local_stack,
    start_operator_and_callback,
    step,
)
from google_token_sandbox.demo_data import DEMO_CLIENT_ID, DEMO_CLIENT_NAME, DEMO_CLIENT_SECRET
from google_token_sandbox.state import SandboxState

EXAMPLES = REPO / "manifests" / "examples"
OPERATOR_NAMESPACE = "google-token-operator"


def examples_client() -> tuple[str, str]:
    """The placeholder OAuth client the examples' credentials Secret holds (fake values)."""
    secret = yaml.safe_load((EXAMPLES / "credentials-secret.yaml").read_text())
    return secret["stringData"]["client_id"], secret["stringData"]["client_secret"]


def examples_namespace() -> str:
    return str(yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())["namespace"])


def run(args: argparse.Namespace) -> None:
    client_id, client_secret = examples_client()

    def dev_google(state: SandboxState, callback_url: str) -> None:
        state.auto_approve = args.auto
        state.register_client(client_id, client_secret, [callback_url], "manifests/examples")
        state.register_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, [callback_url], DEMO_CLIENT_NAME)

    with local_stack(dev_google) as demo:
        step("Applying the CRDs, the operator's namespace and manifests/examples")
        apply_crds(demo)
        demo.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        print(demo.kubectl("apply", "-k", str(EXAMPLES)), end="")

        step("Starting the operator (all namespaces) and the callback as local processes")
        operator_log, callback_log = start_operator_and_callback(demo, OPERATOR_NAMESPACE, "-A")
        namespace = examples_namespace()
        url = consent_url(demo, "acme", namespace)
        hand_key_to_callback(demo, OPERATOR_NAMESPACE)
        show(demo, namespace, url, (client_id, client_secret), (operator_log, callback_log))
        signal.pause()


def show(
    demo: Demo, namespace: str, url: str, client: tuple[str, str], logs: tuple[Path, Path]
) -> None:
    step("Ready")
    info(f"The sandbox knows the examples' OAuth client (fake, sandbox only): id {client[0]}")
    info(f"secret {client[1]}; redirect URI {demo.ports.callback_url}")
    info(f"Consent URL of GoogleClient {namespace}/acme (open it and click Allow):")
    print(f"\n    {url}\n", flush=True)
    info(f"Logs: operator {logs[0]}, callback {logs[1]}")
    info("In another shell, for kubectl and the CLI:")
    print(
        f"\n    export KUBECONFIG={demo.plane.kubeconfig}"
        f"\n    export PATH={Path(sys.executable).parent}:{demo.plane.bin_dir}:$PATH"
        f"\n    export OPERATOR_NAMESPACE={OPERATOR_NAMESPACE}"
        f"\n    kubectl get googletokens -A"
        f"\n    google-token-operator status -n {namespace}\n",
        flush=True,
    )
    info("Ctrl-C stops everything.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--auto", action="store_true", help="the sandbox approves each consent without a click"
    )
    args = parser.parse_args()
    # Ctrl-C and SIGTERM both unwind through the `with` blocks, which stop what they started;
    # SIGINT explicitly too, as a shell starts background jobs with it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        run(args)
    except KeyboardInterrupt:
        print("\nStopped; nothing is left running.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
