"""The `llmrollout` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from llmrollout.eval.cli import add_commands as add_eval_commands


def _run(args: argparse.Namespace) -> int:
    import kopf

    import llmrollout.handlers  # noqa: F401  (registers the handlers)

    if not args.all_namespaces and not args.namespace:
        print("llmrollout run: pass --all-namespaces or at least one --namespace", file=sys.stderr)
        return 2
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or (),
        standalone=args.standalone,
        liveness_endpoint=args.liveness,
    )
    return 0


def _crd(_: argparse.Namespace) -> int:
    from llmrollout.api.crd import render

    sys.stdout.write(render())
    return 0


def _client(args: argparse.Namespace) -> Any:
    from llmrollout.k8s import api_client

    return api_client(args.kubeconfig)


def _act(args: argparse.Namespace) -> int:
    from llmrollout.k8s import LLMDeploymentNotFoundError, request_action, set_paused

    try:
        with _client(args) as api:
            if args.command in ("pause", "resume"):
                set_paused(api, args.namespace, args.name, args.command == "pause")
            else:
                request_action(api, args.namespace, args.name, args.command)
    except LLMDeploymentNotFoundError as error:
        print(f"llmrollout {args.command}: {error}", file=sys.stderr)
        return 1
    done = {
        "pause": "paused",
        "resume": "resumed",
        "promote": "promotion requested",
        "abort": "abort requested",
    }
    print(f"llmdeployment {args.namespace}/{args.name}: {done[args.command]}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from llmrollout.k8s import LLMDeploymentNotFoundError, get_llmdeployment

    try:
        with _client(args) as api:
            obj = get_llmdeployment(api, args.namespace, args.name)
    except LLMDeploymentNotFoundError as error:
        print(f"llmrollout status: {error}", file=sys.stderr)
        return 1
    status = obj.get("status", {})
    print(f"{args.namespace}/{args.name}: {status.get('phase', 'Pending')}")
    print(f"  stable:    {status.get('stable', '-')}")
    print(
        f"  candidate: {status.get('candidate') or '-'} at {status.get('candidateWeight', 0)}%"
        f" (step {status.get('step', 0)})"
    )
    fallback = status.get("fallback")
    if fallback:
        state = "degraded, least bad" if fallback.get("degraded") else "active"
        print(
            f"  fallback:  {state}: {fallback['active']} carries {fallback['failed']}'s traffic since"
            f" {fallback['since']} ({fallback['reason']}); {fallback.get('healthyIntervals', 0)} healthy"
            " intervals so far; `llmrollout failback` forces the return"
        )
    weights = status.get("weights", {})
    print("  weights:   " + (", ".join(f"{v} {w}%" for v, w in weights.items()) or "-"))
    for condition in status.get("conditions", []):
        state = f"{condition['type']}={condition['status']}"
        print(f"  {state} {condition['reason']}: {condition.get('message', '')}")
    for result in status.get("analysis", {}).get("results", []):
        print(f"  {result['verdict']:<12} {result['message']}")
    for entry in status.get("history", [])[-5:]:
        print(f"  {entry['time']} {entry['reason']}: {entry['message']}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="llmrollout", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "-n", "--namespace", action="append", help="namespace to serve (repeatable; globs allowed)"
    )
    run.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace")
    run.add_argument(
        "--standalone", action="store_true", help="do not coordinate with other operator replicas (peering)"
    )
    run.add_argument(
        "--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_run)

    crd = commands.add_parser("crd", help="print the LLMDeployment CustomResourceDefinition")
    crd.set_defaults(func=_crd)

    helps = {
        "status": "show phase, weights, conditions and the last analysis",
        "promote": "promote the candidate now, skipping the remaining steps",
        "abort": "roll the candidate back to 0% now",
        "failback": "return traffic to the failed version now, ending the active fallback",
        "pause": "hold the rollout where it is (sets spec.paused)",
        "resume": "continue a paused rollout (clears spec.paused)",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text)
        command.add_argument("name", help="LLMDeployment name")
        command.add_argument("-n", "--namespace", default="default")
        command.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
        command.set_defaults(func=_status if name == "status" else _act)
    add_eval_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
