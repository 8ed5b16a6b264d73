"""``python -m karte_assets.client launch|status|cancel``: the product's runs from a shell script.

Exit codes (also in docs/launching-runs.md):
  0  launched (the run id is printed), cancel requested, or the run SUCCEEDED (status)
  1  the run ended FAILURE or CANCELED (status)
  2  refused, nothing was done: unknown use case, client, asset, parameter or deployment, a bad
     value, an inverted range or a day the job does not have, a run that already ended (cancel),
     bad arguments
  3  the deployment could not be reached or refused the call (address, API token, job missing)
  4  the deployment has no run with that id
  5  the run has not ended yet (status; with --wait, it did not end in time)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from dagster import DagsterRunStatus

from karte_assets.client.api import Platform
from karte_assets.client.deployments import DEPLOYMENTS
from karte_assets.client.errors import DeploymentError, RequestError, RunNotFound

OK, RUN_FAILED, REFUSED, UNREACHABLE, NO_SUCH_RUN, NOT_ENDED = 0, 1, 2, 3, 4, 5


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day in YYYY-MM-DD form") from None


def _override(text: str) -> tuple[str, object]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not <asset>.<parameter>=<value>")
    try:  # 0.05, 150, true, [1, 2] as JSON; anything else is a string
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object")
    return value


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--deployment", choices=DEPLOYMENTS, default="local", help="where to run (default local)"
    )
    main = argparse.ArgumentParser(
        prog="python -m karte_assets.client",
        description="Launch, follow and cancel a client's runs.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = main.add_subparsers(dest="command", required=True)
    launch = commands.add_parser(
        "launch", parents=[common], help="launch a use case for a client; prints the run id"
    )
    launch.add_argument("--use-case", required=True, help="e.g. loyalty")
    launch.add_argument("--client", required=True, help="the client id, e.g. default")
    launch.add_argument("--from", dest="start", required=True, type=_day, help="first day, YYYY-MM-DD")
    launch.add_argument(
        "--to", dest="end", type=_day, help="last day (default: the first); a range is one run"
    )
    launch.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_override,
        default=[],
        metavar="ASSET.PARAMETER=VALUE",
    )
    launch.add_argument("--asset", dest="assets", action="append", help="run only these assets (repeatable)")
    launch.add_argument(
        "--worker-pool",
        type=_json_object,
        metavar="JSON",
        help='Vertex AI training machine fields for this run, e.g. \'{"machine_type": "g2-standard-8"}\'',
    )
    status = commands.add_parser("status", parents=[common], help="a run's status and assets, as JSON")
    status.add_argument("run_id")
    status.add_argument("--wait", type=float, metavar="SECONDS", help="wait up to SECONDS for the run to end")
    cancel = commands.add_parser("cancel", parents=[common], help="cancel a run")
    cancel.add_argument("run_id")
    return main


def run(args: argparse.Namespace) -> int:
    platform = Platform(args.deployment)
    if args.command == "launch":
        overrides = dict(args.overrides)
        if len(overrides) < len(args.overrides):
            raise RequestError("a parameter is --set more than once")
        print(
            platform.launch(
                args.use_case, args.client, args.start, args.end, overrides, args.assets, args.worker_pool
            )
        )
        return OK
    if args.command == "cancel":
        platform.cancel(args.run_id)
        return OK
    try:
        report = (
            platform.wait(args.run_id, args.wait) if args.wait is not None else platform.status(args.run_id)
        )
    except TimeoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return NOT_ENDED
    print(json.dumps(report.to_dict(), indent=2))
    if not report.finished:
        return NOT_ENDED
    return OK if report.status == DagsterRunStatus.SUCCESS.value else RUN_FAILED


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    codes = ((RequestError, REFUSED), (DeploymentError, UNREACHABLE), (RunNotFound, NO_SUCH_RUN))
    try:
        return run(args)
    except (RequestError, DeploymentError, RunNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return next(code for kind, code in codes if isinstance(error, kind))


if __name__ == "__main__":
    sys.exit(main())
