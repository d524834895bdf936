"""The `llmrollout` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
