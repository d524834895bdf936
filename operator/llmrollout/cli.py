"""The `llmrollout` command."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from llmrollout.eval.cli import add_commands as add_eval_commands

if TYPE_CHECKING:
    from llmrollout.api import LLMDeploymentSpec
    from llmrollout.rollout import MetricsReport

# Command -> (what it does, what it prints once the request is accepted).
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "status": ("show phase, weights, conditions and the last analysis", ""),
    "promote": ("promote the candidate now, skipping the remaining steps", "promotion requested"),
    "abort": ("roll the candidate back to 0% now", "abort requested"),
    "failback": (
        "return traffic to the failed version now, ending the active fallback",
        "failback requested",
    ),
    "pause": ("hold the rollout where it is (sets spec.paused)", "paused"),
    "resume": ("continue a paused rollout (clears spec.paused)", "resumed"),
}


def _run(args: argparse.Namespace) -> int:
    import kopf

    from llmrollout.handlers import telemetry
    from llmrollout.handlers.llmdeployment import LeaseConfig, use_kopf_watch, use_timer, uses_own_watch
    from llmrollout.handlers.shards import Shard, parse_selector, parse_shard
    from llmrollout.k8s import LeaseRef

    if not args.all_namespaces and not args.namespace:
        print("llmrollout run: pass --all-namespaces or at least one --namespace", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("llmrollout run: --workers: must be at least 1", file=sys.stderr)
        return 2
    try:
        index, count = parse_shard(args.shard)
    except ValueError as error:
        print(f"llmrollout run: --shard: {error}", file=sys.stderr)
        return 2
    try:
        selector = parse_selector(args.selector or "")
    except ValueError as error:
        print(f"llmrollout run: --selector: {error}", file=sys.stderr)
        return 2
    shard = Shard(index, count, selector)
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    memo = kopf.Memo(
        prometheus_allowlist=tuple(args.prometheus_allow or ()),
        scheduler_kind=args.scheduler,
        workers=args.workers,
        shard=shard,
        # Events say which process (and shard) decided: reportingInstance.
        instance=f"{identity}-shard-{index}" if count > 1 else identity,
    )
    if args.scheduler == "timer":
        use_timer()
    elif uses_own_watch(args.namespace or ()):
        memo.watch_namespaces = [None] if args.all_namespaces else list(dict.fromkeys(args.namespace))
    else:
        use_kopf_watch()
    if args.leader_election:
        memo.election = LeaseConfig(
            lease=LeaseRef(args.lease_namespace, shard.lease_name(args.lease_name)),
            identity=identity,
            duration_seconds=args.lease_duration,
        )
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(verbose=args.verbose, log_format=log_format)
    if not args.verbose:
        telemetry.quiet_third_party_logs()
    if args.metrics_address:
        try:
            telemetry.serve(args.metrics_address)
        except (ValueError, OSError) as error:
            print(f"llmrollout run: --metrics-address: {error}", file=sys.stderr)
            return 2
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or (),
        # Kopf's own peering is never used: one replica acts through --leader-election instead.
        standalone=True,
        liveness_endpoint=args.liveness,
        memo=memo,
    )
    return 0


def _crd(args: argparse.Namespace) -> int:
    from llmrollout.api.crd import render

    try:
        sys.stdout.write(render(args.min_interval) if args.min_interval else render())
    except ValueError as error:
        print(f"llmrollout crd: --min-interval: {error}", file=sys.stderr)
        return 2
    return 0


def _client(args: argparse.Namespace) -> Any:
    from llmrollout.k8s import api_client

    return api_client(args.kubeconfig)


def _act(args: argparse.Namespace) -> int:
    from llmrollout.k8s import request_action, set_paused

    def call(api: Any) -> None:
        if args.command in ("pause", "resume"):
            set_paused(api, args.namespace, args.name, args.command == "pause")
        else:
            request_action(api, args.namespace, args.name, args.command)

    if _talk(args, call) is None:
        return 1
    print(f"llmdeployment {args.namespace}/{args.name}: {COMMANDS[args.command][1]}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from llmrollout.k8s import get_llmdeployment

    obj = _talk(args, lambda api: get_llmdeployment(api, args.namespace, args.name))
    if obj is None:
        return 1
    print("\n".join(describe_status(args.namespace, args.name, obj)))
    return 0


# `llmrollout check` exits with these, so that scripts (CI, a pre-rollout hook) can tell them apart.
CHECK_FOUND, CHECK_MISSING, CHECK_CANNOT = 0, 1, 2


def _check(args: argparse.Namespace) -> int:
    """The MetricsReady report, read now: per SLO, the series found and missing, and what to fix."""
    from datetime import UTC, datetime

    import httpx

    from llmrollout import rollout
    from llmrollout.api import InvalidSpecError, LLMDeploymentStatus
    from llmrollout.handlers.reconciler import Clients, check_series, checked_spec
    from llmrollout.k8s import get_llmdeployment

    def check(api: Any) -> tuple[int, list[str]]:
        obj = get_llmdeployment(api, args.namespace, args.name)
        raw = dict(obj.get("spec") or {})
        metrics = dict(raw.get("metrics") or {})
        if args.prometheus and isinstance(metrics.get("prometheus"), dict):
            metrics["prometheus"] = {**metrics["prometheus"], "address": args.prometheus}
            raw["metrics"] = metrics
        with httpx.Client(timeout=httpx.Timeout(10.0, read=30.0)) as http:
            try:
                spec = checked_spec(raw, http, args.namespace)
            except InvalidSpecError as error:
                return CHECK_CANNOT, [f"invalid spec: {error}"]
            if spec.metrics.prometheus is None:
                return CHECK_CANNOT, ["spec.metrics.prometheus is not set"]
            status = LLMDeploymentStatus.model_validate(obj.get("status") or {})
            serving, candidate = rollout.checked_variants(spec, status)
            variants = [serving, *([candidate] if candidate else [])]
            # The user's own credentials read the Prometheus auth Secret, if the spec names one.
            clients = Clients(api=api, http=http)
            preflight = check_series(clients, spec, args.namespace, variants, datetime.now(UTC))
        report = rollout.metrics_report(spec, preflight, serving, candidate)
        lines = describe_check(args.namespace, args.name, spec, report)
        if report.unavailable is not None or report.problems:
            return CHECK_CANNOT, lines
        return (CHECK_FOUND if report.complete else CHECK_MISSING), lines

    checked = _talk(args, check)
    if checked is None:
        return CHECK_CANNOT
    code, lines = checked
    if code == CHECK_CANNOT and len(lines) == 1:
        print(f"llmrollout check: {lines[0]}", file=sys.stderr)
    else:
        print("\n".join(lines))
    return int(code)


def describe_check(namespace: str, name: str, spec: LLMDeploymentSpec, report: MetricsReport) -> list[str]:
    """The lines `llmrollout check` prints: what was asked of which Prometheus, then the report."""
    metrics = spec.metrics
    address = metrics.prometheus.address if metrics.prometheus is not None else "(no Prometheus)"
    versions = f"{report.serving} (serving)" + (
        f" and {report.candidate} (candidate)" if report.candidate else ""
    )
    source = " from the OpenTelemetry resource (target_info)" if metrics.variant_from == "resource" else ""
    return [
        f"{namespace}/{name}: series of {versions} in {address}",
        f"  preset {metrics.preset}, variant label {metrics.effective_variant_label}{source}",
        *report.lines(),
    ]


def _talk(args: argparse.Namespace, call: Callable[[Any], Any]) -> Any:
    """Runs `call` with an API client; None after printing why the cluster could not be asked."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    from llmrollout.k8s import LLMDeploymentNotFoundError, describe_api_error

    try:
        with _client(args) as api:
            result = call(api)
            return True if result is None else result
    except LLMDeploymentNotFoundError as error:
        problem = str(error)
    except ApiException as error:
        problem = describe_api_error(error)
    except ConfigException as error:
        problem = f"no cluster to talk to (pass --kubeconfig or set KUBECONFIG): {error}"
    except (HTTPError, OSError) as error:
        problem = f"Kubernetes API unreachable: {type(error).__name__}: {error}"
    print(f"llmrollout {args.command}: {problem}", file=sys.stderr)
    return None


def describe_status(namespace: str, name: str, obj: Mapping[str, Any]) -> list[str]:
    """The lines `llmrollout status` prints; tolerant of a status the operator has not written yet."""
    status = obj.get("status") or {}
    lines = [
        f"{namespace}/{name}: {status.get('phase', 'Pending')}",
        f"  stable:    {status.get('stable', '-')}",
        f"  candidate: {status.get('candidate') or '-'} at {status.get('candidateWeight', 0)}%"
        f" (step {status.get('step', 0)})",
    ]
    fallback = status.get("fallback")
    if fallback:
        state = "degraded, least bad" if fallback.get("degraded") else "active"
        lines.append(
            f"  fallback:  {state}: {fallback.get('active')} carries {fallback.get('failed')}'s traffic"
            f" since {fallback.get('since')} ({fallback.get('reason')});"
            f" {fallback.get('healthyIntervals', 0)} healthy intervals so far;"
            " `llmrollout failback` forces the return"
        )
    weights = status.get("weights") or {}
    lines.append("  weights:   " + (", ".join(f"{v} {w}%" for v, w in weights.items()) or "-"))
    plan = status.get("plan") or {}
    if "minutesLeft" in plan:
        # Per SLO the plan is in the Planned condition below; here what the horizon leaves and needs.
        needed = (
            f"; a horizon of {plan['neededHorizon']} keeps its rule within the error rates"
            if "neededHorizon" in plan
            else ""
        )
        lines.append(f"  plan:      {plan['minutesLeft']:g} min left to the horizon{needed}")
    for condition in status.get("conditions") or []:
        state = f"{condition.get('type')}={condition.get('status')}"
        lines.append(f"  {state} {condition.get('reason')}: {condition.get('message', '')}")
    for result in (status.get("analysis") or {}).get("results") or []:
        lines.append(f"  {result.get('verdict', '?'):<12} {result.get('message', '')}")
    for entry in (status.get("history") or [])[-5:]:
        lines.append(f"  {entry.get('time')} {entry.get('reason')}: {entry.get('message')}")
    return lines


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="llmrollout", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "-n", "--namespace", action="append", help="namespace to serve (repeatable; globs allowed)"
    )
    run.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace")
    run.add_argument(
        "--leader-election",
        action="store_true",
        help="act only while holding a coordination.k8s.io Lease, so that one of several replicas acts",
    )
    run.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE or default)",
    )
    run.add_argument("--lease-name", default="llmrollout", help="name of the Lease (default: llmrollout)")
    run.add_argument(
        "--lease-duration",
        type=int,
        default=15,
        metavar="SECONDS",
        help="a standby takes over within this long after the leader stops renewing (default: 15)",
    )
    run.add_argument(
        "--standalone",
        action="store_true",
        help="accepted for compatibility; without --leader-election the operator acts alone anyway",
    )
    run.add_argument(
        "--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument(
        "--prometheus-allow",
        action="append",
        metavar="HOST[:PORT]",
        help="a Prometheus host LLMDeployments may name (repeatable; *.suffix for a domain);"
        " without any, every host is allowed",
    )
    run.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve the operator's own Prometheus metrics at /metrics, e.g. 0.0.0.0:8081",
    )
    run.add_argument(
        "--log-format",
        choices=("plain", "json"),
        default="plain",
        help="json: one JSON object per line, for log collectors (default: plain)",
    )
    run.add_argument(
        "--shard",
        default="0/1",
        metavar="I/N",
        help="serve only the LLMDeployments whose stable hash of namespace/name modulo N is I, holding"
        " the Lease <lease-name>-shard-I (default: 0/1, every object, the plain Lease)",
    )
    run.add_argument(
        "--selector",
        metavar="LABELS",
        help="serve only the LLMDeployments this label selector matches (e.g. tier=gold or"
        " 'team in (a,b)'); give each replica set a disjoint one, and its own --lease-name",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=8,
        metavar="N",
        help="reconciles that may run at once (default: 8); a slow object holds only one",
    )
    run.add_argument(
        "--scheduler",
        choices=("heap", "timer"),
        default="heap",
        help="heap: wake each LLMDeployment when it is due (default); timer: look at every object"
        " every $LLMROLLOUT_TICK_SECONDS, the old way, kept as the benchmarks' baseline",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log every request and handler run")
    run.set_defaults(func=_run)

    crd = commands.add_parser("crd", help="print the LLMDeployment CustomResourceDefinition")
    crd.add_argument(
        "--min-interval",
        metavar="DURATION",
        help="floor for strategy.interval and analysis.lookInterval (default 10s); lower it only for"
        " second-scale test clusters",
    )
    crd.set_defaults(func=_crd)

    for name, (text, _) in COMMANDS.items():
        # argparse %-formats help strings; a literal percent sign must be doubled.
        command = commands.add_parser(name, help=text.replace("%", "%%"), description=text)
        command.add_argument("name", help="LLMDeployment name")
        command.add_argument("-n", "--namespace", default="default")
        command.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
        command.set_defaults(func=_status if name == "status" else _act)
    check = commands.add_parser(
        "check",
        help="check that Prometheus has every configured SLO's series (the MetricsReady report)",
        description="Reads the LLMDeployment, asks its Prometheus for every configured SLO's series of"
        " the serving version and the candidate, and prints per SLO the series found and missing (with"
        " the selector looked for) and what to fix: the report the MetricsReady condition summarises."
        " A series seen within the last hour counts as present.",
        epilog="exit status: 0 every series found; 1 some missing (the serving version's block a"
        " rollout; a candidate's may appear only with its first traffic); 2 could not check (no such"
        " LLMDeployment, an invalid spec, Prometheus unreachable or refusing a query)",
    )
    check.add_argument("name", help="LLMDeployment name")
    check.add_argument("-n", "--namespace", default="default")
    check.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    check.add_argument(
        "--prometheus",
        metavar="URL",
        help="ask this Prometheus instead of spec.metrics.prometheus.address, e.g. through"
        " `kubectl port-forward` (http://127.0.0.1:9090)",
    )
    check.set_defaults(func=_check)
    add_eval_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
